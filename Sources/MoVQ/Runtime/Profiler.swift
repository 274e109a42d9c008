import Foundation

/// Collects wall time per operator for `movq bench --layers`.
public final class Profiler: @unchecked Sendable {
    /// Time, FLOPs and call count of one operator name.
    public struct Entry: Sendable { public var name: String; public var seconds: Double; public var flops: Double; public var calls: Int }
    private var entries: [String: Entry] = [:]
    private var order: [String] = []
    private let lock = NSLock()

    /// An empty profile.
    public init() {}

    func record(_ name: String, flops: Double, _ body: () -> Void) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        lock.lock(); defer { lock.unlock() }
        if entries[name] == nil { order.append(name); entries[name] = Entry(name: name, seconds: 0, flops: 0, calls: 0) }
        entries[name]!.seconds += dt; entries[name]!.flops += flops; entries[name]!.calls += 1
    }

    /// Entries in first-seen order.
    public var report: [Entry] { lock.lock(); defer { lock.unlock() }; return order.map { entries[$0]! } }
}
