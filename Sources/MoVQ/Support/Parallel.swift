import Dispatch

/// How many threads a computation may use, and the one way we split work.
///
/// Work is always split into independent index ranges; every output element
/// is computed by exactly one task with a fixed reduction order, so results
/// are bit-identical for any thread count.
public struct Parallelism: Sendable {
    /// Number of worker threads (at least 1).
    public let threads: Int

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
