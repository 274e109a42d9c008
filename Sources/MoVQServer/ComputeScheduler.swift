import Foundation
import MoVQ

/// What one request asks the compute thread to do.
enum Work: Sendable {
    /// Sample token maps with a prior, then decode them: image `i` has
    /// `classes[i]` and its own seed, so it is the same in any batch.
    case generate(prior: String, classes: [Int], seeds: [UInt64], settings: GenerationSettings)
    /// Decode latents or index maps `[B, ...]`.
    case decode(model: String, input: DecodeInput, quantize: Bool)
    /// Encode images `[B, C, H, W]` to index maps.
    case encode(model: String, images: Tensor)

    /// Images the work produces or consumes (what `--max-batch` counts).
    var images: Int {
        switch self {
        case .generate(_, let c, _, _): return c.count
        case .decode(_, let input, _): return input.batch
        case .encode(_, let t): return t.shape[0]
        }
    }

    /// Work with the same key can run as one batch (nil: alone).
    var batchKey: String? {
        switch self {
        case .generate(let prior, _, _, let s): return "generate|\(prior)|\(s.key)"
        case .decode(let model, let input, let q): return "decode|\(model)|\(input.shapeKey)|\(q)"
        case .encode: return nil
        }
    }
}

/// Sampler settings a batch shares.
struct GenerationSettings: Sendable {
    var maskgit: MaskGITSettings
    var autoregressive: AutoregressiveSettings
    var key: String {
        let m = maskgit, a = autoregressive
        return "\(m.steps)|\(m.temperature)|\(m.choiceTemperature)|\(m.schedule)|\(m.guidance)|\(a.temperature)|\(a.topK)|\(a.topP)"
    }
}

/// A decode request's input.
enum DecodeInput: Sendable {
    case latent(Tensor), indices(IndexMap)
    var batch: Int { switch self { case .latent(let t): return t.shape[0]; case .indices(let m): return m.shape[0] } }
    var shapeKey: String {
        switch self {
        case .latent(let t): return "latent\(t.shape.dropFirst())"
        case .indices(let m): return "indices\(m.shape.dropFirst())"
        }
    }
}

/// What the compute thread hands back.
struct WorkResult: Sendable {
    enum Output: Sendable { case images([Image8]), tensor(Tensor), indices(IndexMap) }
    var output: Output
    /// Seconds in the queue, seconds of compute, and images in the batch it ran in.
    var queueSeconds: Double, computeSeconds: Double, batchImages: Int
}

/// The one place compute runs: a bounded queue drained by a dedicated
/// thread (never the event loop) that merges compatible requests into
/// batches. A full queue refuses at once (429), a request that cannot start
/// before its deadline gets 503, and a request whose client has gone before
/// it starts is dropped without running.
public final class ComputeScheduler: @unchecked Sendable {
    final class Job: @unchecked Sendable {
        let work: Work, enqueued = Date(), deadline: Date
        var continuation: CheckedContinuation<WorkResult, any Error>? = nil
        var cancelled = false
        /// Answers 503 if the job is still queued at its deadline; cancelled when it leaves the queue.
        var expiry: Task<Void, Never>? = nil
        init(_ work: Work, deadline: Date) { self.work = work; self.deadline = deadline }
    }

    let registry: ModelRegistry
    let options: ServerOptions
    let metrics: ServerMetrics
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var accepting = true
    private var finished = false
    private var held = false
    /// Tests hold the worker to fill the queue.
    var paused: Bool {
        get { condition.lock(); defer { condition.unlock() }; return held }
        set { condition.lock(); held = newValue; condition.broadcast(); condition.unlock() }
    }

    init(registry: ModelRegistry, options: ServerOptions, metrics: ServerMetrics) {
        self.registry = registry; self.options = options; self.metrics = metrics
        let t = Thread { [unowned self] in self.workerLoop() }
        t.name = "movq-compute"
        t.start()
    }

    /// Requests waiting for compute.
    var depth: Int { condition.lock(); defer { condition.unlock() }; return queue.count }
    /// Whether a new request would be queued.
    var hasRoom: Bool { condition.lock(); defer { condition.unlock() }; return accepting && queue.count < options.queueDepth }

    /// Queues `work` and waits for its result.
    func submit(_ work: Work) async throws -> WorkResult {
        let job = Job(work, deadline: Date(timeIntervalSinceNow: options.requestTimeoutSeconds))
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<WorkResult, any Error>) in
                condition.lock()
                if job.cancelled {
                    condition.unlock()
                    c.resume(throwing: CancellationError())
                    return
                }
                if !accepting {
                    condition.unlock()
                    c.resume(throwing: APIError(.serviceUnavailable, "the server is shutting down"))
                    return
                }
                if queue.count >= options.queueDepth {
                    condition.unlock()
                    var e = APIError(.tooManyRequests, "the queue is full (\(options.queueDepth) requests waiting); retry later")
                    e.headers[.retryAfter] = "1"
                    c.resume(throwing: e)
                    return
                }
                job.continuation = c
                queue.append(job)
                metrics.queueDepth.set(Double(queue.count))
                // Still queued at its deadline: answer 503 then, not when the worker gets to it.
                let seconds = options.requestTimeoutSeconds
                job.expiry = Task { [weak self] in
                    guard (try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))) != nil else { return }
                    self?.expire(job)
                }
                condition.signal()
                condition.unlock()
            }
        } onCancel: {
            cancel(job)
        }
    }

    /// The client has gone: a queued job leaves the queue at once; one already
    /// taken into a batch is dropped before it runs.
    private func cancel(_ job: Job) {
        condition.lock(); defer { condition.unlock() }
        job.cancelled = true
        if removeQueued(job, answering: CancellationError()) { metrics.droppedBeforeStart.increment() }
    }

    private func expire(_ job: Job) {
        condition.lock(); defer { condition.unlock() }
        removeQueued(job, answering: timedOut)
    }

    /// Takes `job` out of the queue and answers it with `error`; false if it
    /// had already left (taken into a batch, expired or cancelled). Call with the lock held.
    @discardableResult
    private func removeQueued(_ job: Job, answering error: any Error) -> Bool {
        guard let i = queue.firstIndex(where: { $0 === job }) else { return false }
        job.expiry?.cancel()
        queue.remove(at: i)
        metrics.queueDepth.set(Double(queue.count))
        job.continuation?.resume(throwing: error)
        return true
    }

    private var timedOut: APIError { APIError(.serviceUnavailable, "the request could not start within \(options.requestTimeoutSeconds) s") }

    /// Stops accepting work, finishes what was accepted, returns when the queue is empty.
    func drain() {
        condition.lock()
        accepting = false
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
    }

    private func workerLoop() {
        while let batch = nextBatch() { run(batch) }
        condition.lock(); finished = true; condition.broadcast(); condition.unlock()
    }

    /// Waits for work and takes the next job with every queued job that can
    /// join its batch (up to `maxBatch` images, waiting up to the window).
    private func nextBatch() -> [Job]? {
        condition.lock()
        defer { metrics.queueDepth.set(Double(queue.count)); condition.unlock() }
        while queue.isEmpty || held {
            if !accepting && queue.isEmpty { return nil }
            condition.wait()
        }
        var batch = [queue.removeFirst()]
        defer { for j in batch { j.expiry?.cancel() } }  // they left the queue
        guard let key = batch[0].work.batchKey else { return batch }
        var images = batch[0].work.images
        let until = Date(timeIntervalSinceNow: Double(options.batchWindowMilliseconds) / 1000)
        while images < options.maxBatch {
            var i = 0
            while i < queue.count && images < options.maxBatch {
                if queue[i].work.batchKey == key && images + queue[i].work.images <= options.maxBatch {
                    images += queue[i].work.images
                    batch.append(queue.remove(at: i))
                } else {
                    i += 1
                }
            }
            if images >= options.maxBatch || !condition.wait(until: until) { break }
        }
        return batch
    }

    private func run(_ jobs: [Job]) {
        let now = Date()
        var live: [Job] = []
        condition.lock()
        for j in jobs {
            if j.cancelled {
                metrics.droppedBeforeStart.increment()
                j.continuation?.resume(throwing: CancellationError())
            } else if now > j.deadline {
                j.continuation?.resume(throwing: timedOut)
            } else {
                live.append(j)
            }
        }
        condition.unlock()
        guard !live.isEmpty else { return }
        metrics.inFlight.increment()
        defer { metrics.inFlight.decrement() }
        let t0 = Date()
        do {
            let outputs = try compute(live.map(\.work))
            let seconds = Date().timeIntervalSince(t0), images = live.reduce(0) { $0 + $1.work.images }
            metrics.batchSize.record(Double(images))
            for (j, out) in zip(live, outputs) {
                j.continuation?.resume(returning: WorkResult(output: out, queueSeconds: t0.timeIntervalSince(j.enqueued),
                                                             computeSeconds: seconds, batchImages: images))
            }
        } catch {
            // A batch fails as a whole only for reasons its requests share; run them alone to say whose.
            if live.count > 1 { for j in live { run([j]) }; return }
            live[0].continuation?.resume(throwing: error)
        }
    }

    /// Runs works that share a batch key (or one work) as one batch.
    private func compute(_ works: [Work]) throws -> [WorkResult.Output] {
        let threads = options.threads
        switch works[0] {
        case .generate(let name, _, _, let settings):
            guard let (prior, decoderName) = registry.priors[name], let decoder = registry.decoders[decoderName] else {
                throw APIError.notFound("no prior named '\(name)'")
            }
            var classes: [Int] = [], seeds: [UInt64] = []
            for case .generate(_, let c, let s, _) in works { classes += c; seeds += s }
            let tokens: IndexMap
            switch prior {
            case .maskgit(let p): tokens = try p.sample(classes: classes, seeds: seeds, settings: settings.maskgit, threads: threads)
            case .gpt(let p): tokens = try p.sample(classes: classes, seeds: seeds, settings: settings.autoregressive, threads: threads)
            }
            let images = ImageConversion.images(from: try decoder.decode(indices: tokens, threads: threads))
            metrics.imagesGenerated.increment(by: Int64(images.count))
            return split(images, works)
        case .decode(let name, _, let quantize):
            guard let m = registry.decoders[name] else { throw APIError.notFound("no decoder named '\(name)'") }
            let inputs = works.map { w -> DecodeInput in if case .decode(_, let i, _) = w { return i }; fatalError("mixed batch") }
            let batch = inputs.reduce(0) { $0 + $1.batch }  // the batch key makes every other dimension equal
            let out: Tensor
            switch inputs[0] {
            case .latent(let first):
                let data = inputs.flatMap { i -> [Float] in if case .latent(let t) = i { return t.data }; return [] }
                out = try m.decode(latent: try Tensor(shape: [batch] + first.shape.dropFirst(), data: data), quantize: quantize, threads: threads)
            case .indices(let first):
                let values = inputs.flatMap { i -> [Int32] in if case .indices(let x) = i { return x.values }; return [] }
                out = try m.decode(indices: try IndexMap(shape: [batch] + first.shape.dropFirst(), values: values), threads: threads)
            }
            let per = out.count / out.shape[0]
            var start = 0
            return works.map { w in
                let n = w.images
                defer { start += n }
                return .tensor(try! Tensor(shape: [n] + out.shape.dropFirst(), data: Array(out.data[(start * per)..<((start + n) * per)])))
            }
        case .encode(let name, let images):
            guard let m = registry.decoders[name] else { throw APIError.notFound("no model named '\(name)'") }
            return [.indices(try m.quantize(latent: try m.encode(images: images, threads: threads), threads: threads))]
        }
    }

    private func split(_ images: [Image8], _ works: [Work]) -> [WorkResult.Output] {
        var start = 0
        return works.map { w in
            defer { start += w.images }
            return .images(Array(images[start..<(start + w.images)]))
        }
    }
}
