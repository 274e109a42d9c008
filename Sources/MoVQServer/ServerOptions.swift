import Foundation

/// How a `movq-server` runs: what it serves, where, and its limits.
public struct ServerOptions: Sendable {
    /// Models to load, by request name: packed decoders and priors. Empty:
    /// the embedded demo MoVQ (`demo`) and demo prior (`demo-prior`).
    public var models: [(name: String, path: String)] = []
    /// Address to bind (loopback unless told otherwise).
    public var host = "127.0.0.1"
    /// TCP port.
    public var port = 8080
    /// Compute threads (default: all cores).
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    /// Most images one batched sampling or decode run holds.
    public var maxBatch = 8
    /// How long the scheduler waits for more compatible requests after the first (milliseconds).
    public var batchWindowMilliseconds = 5
    /// Most requests waiting for compute; more get 429.
    public var queueDepth = 64
    /// Largest request body (bytes); more gets 413.
    public var maxBodyBytes = 16 << 20
    /// A request that cannot start within this many seconds gets 503.
    public var requestTimeoutSeconds = 60.0
    /// With a key, every route but `/healthz` needs `Authorization: Bearer KEY`.
    public var apiKey: String? = nil

    /// The defaults above.
    public init() {}
}
