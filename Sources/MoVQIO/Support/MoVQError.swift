import Foundation

/// Every failure the library reports. Each case renders as one line that
/// names what is wrong, so the CLI can print it and exit non-zero.
public enum MoVQError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A file could not be opened, read or written.
    case io(path: String, reason: String)
    /// A file is truncated, has a bad magic number, a bad checksum, or an
    /// inconsistent header.
    case corruptFile(path: String, reason: String)
    /// A valid file of a kind or variant we do not support.
    case unsupported(String)
    /// A checkpoint's tensors do not form a model we can run.
    case invalidCheckpoint(String)
    /// A tensor the architecture needs is absent.
    case missingTensor(String)
    /// A tensor has a shape other than the architecture implies.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A weight tensor holds NaN or infinity.
    case nonFiniteWeights(String)
    /// Checkpoint keys that map to nothing in the architecture.
    case unknownKeys([String])
    /// A pickle asked for something the restricted unpickler refuses.
    case pickleRejected(String)
    /// A caller-supplied input (latent, index map, image) is unusable.
    case invalidInput(String)
    /// A computation would need more memory than allowed: `estimate` bytes
    /// (from the shapes, before anything was allocated) against `limit`.
    case memoryLimit(what: String, estimate: Double, limit: Int)

    /// The one-line message the CLI prints.
    public var description: String {
        switch self {
        case .io(let path, let reason): return "\(path): \(reason)"
        case .corruptFile(let path, let reason): return "\(path): corrupt or truncated file: \(reason)"
        case .unsupported(let what): return "unsupported: \(what)"
        case .invalidCheckpoint(let what): return "invalid checkpoint: \(what)"
        case .missingTensor(let name): return "missing tensor '\(name)'"
        case .shapeMismatch(let name, let expected, let found):
            return "tensor '\(name)' has shape \(found), expected \(expected)"
        case .nonFiniteWeights(let name): return "tensor '\(name)' contains NaN or infinity"
        case .unknownKeys(let keys):
            let shown = keys.prefix(5).joined(separator: ", ")
            return "unknown checkpoint keys (\(keys.count)): \(shown)\(keys.count > 5 ? ", ..." : "")"
        case .pickleRejected(let why): return "refused to unpickle: \(why)"
        case .invalidInput(let what): return "invalid input: \(what)"
        case .memoryLimit(let what, let estimate, let limit):
            return "\(what) needs an estimated \(Self.gigabytes(estimate)) of memory, above the limit of \(Self.gigabytes(Double(limit))) (raise it with --max-memory)"
        }
    }

    static func gigabytes(_ bytes: Double) -> String {
        bytes >= 1e15 ? String(format: "%.3g PB", bytes / 1e15) : String(format: "%.2f GB", bytes / 1e9)
    }
}
