import Dispatch

/// How many threads a computation may use, and the one way we split work.
///
/// Work is always split into independent index ranges; every output element
/// is computed by exactly one task with a fixed reduction order, so results
/// are bit-identical for any thread count.
public struct Parallelism: Sendable {
    /// Number of worker threads (at least 1).
    public let threads: Int

    /// `threads` workers (at least 1).
    public init(threads: Int) { self.threads = max(1, threads) }

    /// One thread per available core.
    public static var allCores: Parallelism {
        Parallelism(threads: System.activeProcessorCount)
    }

    /// Calls `body` on disjoint contiguous sub-ranges covering `0..<count`.
    /// `body` runs concurrently and must only write data owned by its range.
    public func forEachRange(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let maxTasks = max(1, count / max(1, minimumChunk))
        let tasks = min(maxTasks, threads == 1 ? 1 : threads * 4)
        if tasks <= 1 { body(0..<count); return }
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: tasks) { t in
                let lo = count * t / tasks, hi = count * (t + 1) / tasks
                if lo < hi { box.value(lo..<hi) }
            }
        }
    }
}

extension Parallelism {
    /// Calls `body(worker, item)` once for every item in `0..<count`. At most
    /// `threads` workers (numbered `0..<threads`, for per-worker scratch)
    /// take the next item as they finish the last, so a slow core delays
    /// little. Each item must compute its outputs alone, so the result does
    /// not depend on which worker ran it.
    public func forEachItem(_ count: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
        guard count > 0 else { return }
        let workers = min(threads, count)
        if workers == 1 { for i in 0..<count { body(0, i) }; return }
        let next = ItemCounter()
        withoutActuallyEscaping(body) { body in
            let box = UnsafeSendableBox(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                while true {
                    let i = next.take()
                    if i >= count { break }
                    box.value(w, i)
                }
            }
        }
    }
}

/// A shared "next item" counter.
private final class ItemCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    func take() -> Int { lock.lock(); defer { lock.unlock() }; next += 1; return next - 1 }
}

/// Wraps a non-Sendable value for handing to Dispatch workers whose
/// accesses are disjoint by construction.
struct UnsafeSendableBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

enum System {
    static var activeProcessorCount: Int {
        #if canImport(Foundation)
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
        #else
        return 1
        #endif
    }
}

#if canImport(Foundation)
import Foundation
#endif
