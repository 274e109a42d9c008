import Foundation

/// Cache sizes used for blocking, read from sysfs on Linux.
enum CacheInfo {
    /// Per-core L2 size in bytes (512 KB when unknown).
    static let l2Bytes: Int = {
        #if os(Linux)
        if let s = try? String(contentsOfFile: "/sys/devices/system/cpu/cpu0/cache/index2/size", encoding: .utf8) {
            let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
            if t.hasSuffix("K"), let v = Int(t.dropLast()) { return max(128, min(8192, v)) * 1024 }
            if t.hasSuffix("M"), let v = Int(t.dropLast()) { return max(1, min(8, v)) * 1024 * 1024 }
        }
        #endif
        return 512 * 1024
    }()
}
