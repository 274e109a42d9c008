import Foundation
import MoVQKernelCore

/// Runs a transformer `ModelPlan` (`TransformerPlans`) on the SIMD
/// operators: `[features][columns]` values with planes padded for the GEMM
/// kernels, weights packed once at load, activations in an arena planned
/// from the plan's lifetimes (kept for the next run of the same plan). The
/// plan's state values (the autoregressive key/value cache) live in the
/// same arena, alive throughout, so consecutive steps share them.
final class TransformerExecutor: @unchecked Sendable {
    enum Operator {
        case embed(tokens: [[Float]], classes: [Float], positions: [Float])
        case linear(LinearOperator), layerNorm(LayerNormOperator), gelu, attention
    }

    let kernels: KernelSet
    let operators: [Operator]
    /// The plan for a batch (the ops are the same for every batch).
    let planAt: @Sendable (_ batch: Int) -> ModelPlan

    /// A plan at one batch with its arena, for one thread count: what a
    /// forward (MaskGIT) or a sampling session (GPT, whose cache it holds) runs on.
    final class Instance: @unchecked Sendable {
        let plan: ModelPlan, arena: ActivationArena, threads: Int
        init(_ plan: ModelPlan, _ layout: ActivationLayout, threads: Int) {
            self.plan = plan; self.threads = threads
            arena = ActivationArena(layout)
            arena.base.update(repeating: 0, count: layout.floats)  // slack columns (and an empty cache) stay finite
        }
    }

    /// Packs the weights of `planAt(1)`'s ops from `file`.
    init(file: PackedFile, kernels: KernelSet, planAt: @escaping @Sendable (Int) -> ModelPlan) throws {
        self.kernels = kernels; self.planAt = planAt
        let quads = kernels.quadLinear != nil, plan = planAt(1)
        let layouts = plan.kernelLayouts  // the rule `movq convert` stored the weights by: those are read in place
        operators = try plan.ops.map { op in
            switch op {
            case .embed(let e, _):
                let rows = { (name: String) in file.entry(name)?.shape ?? [] }
                return .embed(tokens: try e.tokenTables.map { try file.floatArray($0, shape: rows($0)) },
                              classes: try file.floatArray(e.classTable, shape: rows(e.classTable)),
                              positions: try file.floatArray(e.positionTable, shape: rows(e.positionTable)))
            case .linear(let l, _, _, _):
                // A tied head (embedding rows beyond `outputs`) reads the table as fp32.
                let tied = l.storedRows != l.outputs
                return .linear(try file.withWeights(l.weightName, shape: [l.storedRows, l.inputs], kernelLayout: layouts[l.weightName] ?? .plain) { stored in
                    try file.withFloats(l.biasName, shape: [l.outputs]) { b in
                        guard tied else { return LinearOperator(stored, b, outputs: l.outputs, inputs: l.inputs, quads: quads) }
                        return stored.withFloats { w in
                            LinearOperator(.floats(UnsafeBufferPointer(rebasing: w[0..<(l.outputs * l.inputs)])), b, outputs: l.outputs, inputs: l.inputs)
                        }
                    }
                })
            case .layerNorm(let n, _, _):
                return .layerNorm(LayerNormOperator(weight: try file.floatArray(n.weightName, shape: [n.features]),
                                                    bias: try n.biasName.map { try file.floatArray($0, shape: [n.features]) }, eps: n.eps, rms: n.rms))
            case .gelu: return .gelu
            case .selfAttention: return .attention
            default: throw MoVQError.unsupported("op \(op) in a transformer plan")
            }
        }
    }

    /// A planned instance for `batch` sequences on `threads` threads.
    func instance(batch: Int, threads: Int) -> Instance {
        let plan = planAt(batch)
        return Instance(plan, Self.layout(plan, operators: operators, chunk: kernels.chunk, threads: threads), threads: threads)
    }

    /// Plane stride of a value `width` columns wide: a GEMM chunk of overrun slack past the last column.
    static func planeStride(columns n: Int, chunk: Int) -> Int { (n + chunk - 1) / chunk * chunk + 2 * chunk }

    /// The arena layout of `plan` run by `operators` (nothing allocated).
    static func layout(_ plan: ModelPlan, operators: [Operator], chunk: Int, threads: Int) -> ActivationLayout {
        let values = plan.values.map { $0.channels * planeStride(columns: $0.width, chunk: chunk) }
        let scratch = plan.ops.indices.map { i -> Int in
            switch plan.ops[i] {
            case .linear(_, let x, _, _):
                guard case .linear(let o) = operators[i] else { return 0 }
                return o.scratchFloats(planeStride: planeStride(columns: plan.values[x].width, chunk: chunk))
            case .selfAttention(let heads, let qkv, _, let s, let cache):
                let dh = plan.values[qkv].channels / 3 / heads
                if let cache { return Attention.aligned(cache.length + chunk) * threads }  // scores per worker
                return Attention.scratchFloats(channels: dh, keys: s, chunk: chunk) * threads
            default: return 0
            }
        }
        // The cache persists between steps: alive for the whole plan.
        return ActivationLayout(plan, valueFloats: values, scratchFloats: scratch)
    }

    /// Bytes of the packed weights the operators keep.
    var residentBytes: Int {
        operators.reduce(0) { total, op in
            switch op {
            case .embed(let t, let c, let p): return total + (t.reduce(0) { $0 + $1.count } + c.count + p.count) * 4
            case .linear(let o): return total + o.residentBytes
            case .layerNorm(let o): return total + (o.weight.count + (o.bias?.count ?? 0)) * 4
            case .gelu, .attention: return total
            }
        }
    }

    /// Runs the plan once. MaskGIT: `tokens` `[B][N][c]` flattened and
    /// `classes` `[B]`; GPT: one input per sequence in `tokens` (`-1 - class`
    /// for the class token) at `step`. Calls `output` with each output
    /// value's base pointer and plane stride.
    func run(_ instance: Instance, tokens: [Int32], classes: [Int], step: Int, profiler: Profiler?,
             output: (_ index: Int, _ values: UnsafePointer<Float>, _ planeStride: Int) -> Void) {
        let plan = instance.plan, arena = instance.arena
        let ctx = ExecutionContext(kernels: kernels, parallelism: Parallelism(threads: instance.threads), profiler: profiler)
        let chunk = kernels.chunk
        func stride(_ v: Int) -> Int { Self.planeStride(columns: plan.values[v].width, chunk: chunk) }
        for (i, op) in plan.ops.enumerated() {
            switch (op, operators[i]) {
            case (.embed(let e, let out), .embed(let tables, let classTable, let positionTable)):
                ctx.timed("embeddings") {
                    embed(e, tables, classTable, positionTable, into: arena.value(out), planeStride: stride(out),
                          columns: plan.values[out].width, autoregressive: !plan.state.isEmpty, tokens: tokens, classes: classes, step: step)
                }
            case (.linear(_, let x, let y, let r), .linear(let o)):
                o(arena.value(x), arena.value(y), residual: r.map { UnsafePointer(arena.value($0)) }, planeStride: stride(x),
                  positions: plan.values[x].width, scratch: arena.scratch(i), ctx)
            case (.layerNorm(_, let x, let y), .layerNorm(let o)):
                o(arena.value(x), arena.value(y), planeStride: stride(x), positions: plan.values[x].width, ctx)
            case (.gelu(let v, let rows, let gated), .gelu):
                let np = stride(v)
                geluInPlace(arena.value(v), rows: rows, planeStride: np, gate: gated ? arena.value(v) + rows * np : nil, ctx)
            case (.selfAttention(let heads, let qkv, let out, let s, let cache), .attention):
                attention(plan, arena, heads: heads, qkv: qkv, out: out, sequence: s, cache: cache, step: step, scratch: arena.scratch(i)!, ctx)
            default:
                fatalError("operator \(i) does not match its plan op")
            }
        }
        for (k, v) in plan.outputs.enumerated() { output(k, arena.value(v), stride(v)) }
    }

    /// MaskGIT: column `i * s + q` = position q's embedding + (class token | sum of the c token embeddings).
    /// GPT: column `i` = the step's token (or class) embedding + its position's.
    private func embed(_ e: EmbeddingWeights, _ tables: [[Float]], _ classTable: [Float], _ positionTable: [Float],
                       into x: UnsafeMutablePointer<Float>, planeStride np: Int, columns: Int, autoregressive: Bool,
                       tokens: [Int32], classes: [Int], step: Int) {
        let d = e.features
        if !autoregressive {
            let b = classes.count, s = columns / b, channels = tables.count
            for i in 0..<b {
                for q in 0..<s {
                    let col = i * s + q
                    for k in 0..<d { x[k * np + col] = positionTable[q * d + k] }
                    if q == 0 {
                        for k in 0..<d { x[k * np + col] += classTable[classes[i] * d + k] }
                    } else {
                        for ch in 0..<channels {
                            let t = Int(tokens[((i * (s - 1)) + q - 1) * channels + ch])
                            for k in 0..<d { x[k * np + col] += tables[ch][t * d + k] }
                        }
                    }
                }
            }
        } else {
            for i in 0..<columns {
                let v = Int(tokens[i])
                for k in 0..<d {
                    let emb = v < 0 ? classTable[(-1 - v) * d + k] : tables[0][v * d + k]
                    x[k * np + i] = emb + positionTable[step * d + k]
                }
            }
        }
    }

    /// Heads in parallel, each on one thread with its own scratch (small GEMMs
    /// split across threads cost more in dispatch than they gain). Sequences
    /// go in order: a head's output may run a chunk into the next sequence's columns.
    private func attention(_ plan: ModelPlan, _ arena: ActivationArena, heads: Int, qkv: Int, out: Int, sequence s: Int, cache: KeyValueCache?, step: Int,
                           scratch: UnsafeMutablePointer<Float>, _ ctx: ExecutionContext) {
        let d = plan.values[qkv].channels / 3, dh = d / heads, columns = plan.values[qkv].width, chunk = kernels.chunk
        let np = Self.planeStride(columns: columns, chunk: chunk), scale = 1 / Float(dh).squareRoot()
        let serial = ExecutionContext(kernels: kernels, parallelism: Parallelism(threads: 1))
        let q = UnsafeSendableBox(arena.value(qkv)), a = UnsafeSendableBox(arena.value(out)), sb = UnsafeSendableBox(scratch)
        guard let cache else {
            let per = Attention.scratchFloats(channels: dh, keys: s, chunk: chunk)
            ctx.timed("attention \(heads) heads x \(s)", flops: 4 * Double(s * columns * d)) {
                for i in 0..<(columns / s) {
                    ctx.parallelism.forEachItem(heads) { worker, hd in
                        let base = q.value + hd * dh * np + i * s
                        Attention.attend(q: base, queries: s, queryStride: np, k: base + d * np, v: base + 2 * d * np, keys: s, keyStride: np,
                                         out: a.value + hd * dh * np + i * s, outStride: np, channels: dh, scale: scale,
                                         scratch: sb.value + worker * per, serial)
                    }
                }
            }
            return
        }
        // One step: append each sequence's key and value at `step`, then attend its query over keys 0...step
        // (each (sequence, head) an item of its own, with its own scores).
        let ks = Self.planeStride(columns: plan.values[cache.keys].width, chunk: chunk)
        let kc = UnsafeSendableBox(arena.value(cache.keys)), vc = UnsafeSendableBox(arena.value(cache.values))
        let scoreFloats = Attention.aligned(cache.length + chunk)
        ctx.timed("attention \(heads) heads, cached", flops: 4 * Double((step + 1) * columns * d)) {
            for i in 0..<columns {
                let col = i * cache.length + step
                for k in 0..<d {
                    kc.value[k * ks + col] = q.value[(d + k) * np + i]
                    vc.value[k * ks + col] = q.value[(2 * d + k) * np + i]
                }
            }
            // Short caches are too little work per item to pay for a dispatch.
            let workers = (step + 1) * d * columns >= 1 << 16 ? ctx.parallelism : Parallelism(threads: 1)
            workers.forEachItem(columns * heads) { worker, item in
                let i = item / heads, hd = item % heads
                Attention.attendOne(q: q.value + hd * dh * np + i, queryStride: np,
                                    k: kc.value + hd * dh * ks + i * cache.length, v: vc.value + hd * dh * ks + i * cache.length,
                                    keys: step + 1, keyStride: ks, out: a.value + hd * dh * np + i, outStride: np, channels: dh, scale: scale,
                                    scores: sb.value + worker * scoreFloats, serial)
            }
        }
    }
}
