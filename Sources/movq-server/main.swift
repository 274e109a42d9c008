import ArgumentParser
import Foundation
import Logging
import MoVQ
import MoVQServer

/// `movq-server`: serves decoders and priors over HTTP (Docs/openapi.yaml).
@main
struct MovqServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "movq-server",
        abstract: "Serve MoVQ decoders and priors over HTTP: image generation, decode, encode, metrics.",
        discussion: "With no --model, serves the embedded demo MoVQ (demo) and demo prior (demo-prior) on 127.0.0.1:8080.")

    @Option(name: .customLong("model"), help: "NAME=PATH of a packed decoder or prior (repeatable).")
    var models: [String] = []
    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "TCP port.") var port = 8080
    @Option(help: "Compute threads (default: all cores).") var threads: Int?
    @Option(help: "Most images in one batched run.") var maxBatch = 8
    @Option(help: "Milliseconds to wait for more requests to batch with.") var batchWindowMs = 5
    @Option(help: "Most requests waiting for compute (more get 429).") var queueDepth = 64
    @Option(help: "Largest request body in bytes (more get 413).") var maxBodyBytes = 16 << 20
    @Option(help: "Seconds a request may wait to start (then 503).") var requestTimeout = 60.0
    @Option(help: "Require Authorization: Bearer KEY (default: $MOVQ_API_KEY).") var apiKey: String?

    func run() async throws {
        var o = ServerOptions()
        for m in models {
            guard let eq = m.firstIndex(of: "="), eq != m.startIndex else { throw ValidationError("--model takes NAME=PATH, got '\(m)'") }
            o.models.append((String(m[..<eq]), String(m[m.index(after: eq)...])))
        }
        o.host = host; o.port = port
        if let threads { o.threads = max(1, threads) }
        guard maxBatch >= 1, queueDepth >= 1, batchWindowMs >= 0, maxBodyBytes >= 1, requestTimeout > 0 else {
            throw ValidationError("--max-batch, --queue-depth, --max-body-bytes must be positive, --batch-window-ms >= 0, --request-timeout > 0")
        }
        o.maxBatch = maxBatch; o.batchWindowMilliseconds = batchWindowMs; o.queueDepth = queueDepth
        o.maxBodyBytes = maxBodyBytes; o.requestTimeoutSeconds = requestTimeout
        o.apiKey = apiKey ?? ProcessInfo.processInfo.environment["MOVQ_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let server: MoVQServer
        do { server = try MoVQServer(options: o) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode(1)
        }
        FileHandle.standardError.write(Data("movq-server: serving \(server.registry.names.joined(separator: ", ")) on http://\(o.host):\(o.port)\n".utf8))
        try await server.application().runService()
    }
}
