import Foundation

/// How much memory one decode, encode or sample may plan to use.
///
/// Every entry point estimates its working memory from the shapes before
/// allocating anything and throws `MoVQError.memoryLimit` above the limit,
/// so an absurd input is refused with the estimate instead of aborting the
/// process halfway through.
public enum MemoryLimit {
    /// Physical memory, or the cgroup (container) limit if lower, in bytes.
    public static var availableBytes: Int {
        var total = Int(sysconf(Int32(_SC_PHYS_PAGES))) &* Int(sysconf(Int32(_SC_PAGESIZE)))
        if total <= 0 { total = 1 << 33 }
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let v = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), v > 0, v < total { total = v }
        }
        return total
    }

    /// The default limit: 80% of `availableBytes`.
    public static var defaultBytes: Int { availableBytes / 5 * 4 }

    /// Throws `memoryLimit` when `estimate` bytes exceed `limit`.
    public static func check(_ what: @autoclosure () -> String, estimate: Double, limit: Int) throws {
        guard estimate <= Double(limit) else {
            throw MoVQError.memoryLimit(what: what(), estimate: estimate, limit: limit)
        }
    }

    /// Parses sizes like `512M`, `4G`, `1.5GB`, `800MB` or a byte count.
    public static func parse(_ text: String) -> Int? {
        let t = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("GB", 1e9), ("MB", 1e6), ("KB", 1e3), ("G", 1e9), ("M", 1e6), ("K", 1e3), ("B", 1)]
        for (suffix, scale) in units where t.hasSuffix(suffix) {
            guard let v = Double(t.dropLast(suffix.count)), v > 0, v * scale < 9e18 else { return nil }
            return Int(v * scale)
        }
        guard let v = Int(t), v > 0 else { return nil }
        return v
    }
}
