import Foundation
import MoVQKernelCore

/// Runs a `ModelPlan` on the SIMD operators: each op gets its operator,
/// with weights packed once at load (nothing else of the file stays
/// resident), and each run gets an activation arena planned from the
/// plan's value lifetimes before it starts (kept for the next run of the
/// same size and thread count).
final class SIMDExecutor: @unchecked Sendable {
    /// The operator of each plan op.
    enum Operator {
        case conv(ConvOperator), upsampleConv(UpsampleConvOperator), downsampleConv(DownsampleConvOperator)
        case modulation(ModulationOperator), groupNorm(GroupNormOperator), attention(SpatialAttentionOperator)
        case averagePool(AveragePoolOperator)
    }

    let kernels: KernelSet
    let operators: [Operator]
    /// The plan at an input size (the ops are the same at every size).
    let planAt: @Sendable (_ height: Int, _ width: Int) -> ModelPlan
    private var prepared: (key: [Int], plan: ModelPlan, firstWriters: [Int], arena: ActivationArena)? = nil
    private let lock = NSLock()

    /// Packs the weights of `planAt(1, 1)`'s ops from `file`, operators
    /// spread over all cores (packing is most of a cold start; each
    /// operator's packing is the same whichever worker does it, and the
    /// first error in op order is the one thrown).
    init(file: PackedFile, kernels: KernelSet, planAt: @escaping @Sendable (Int, Int) -> ModelPlan) throws {
        self.kernels = kernels; self.planAt = planAt
        let plan = planAt(1, 1), ops = plan.ops, layouts = plan.kernelLayouts
        var made = [Result<Operator, Error>?](repeating: nil, count: ops.count)
        made.withUnsafeMutableBufferPointer { made in
            let slots = UnsafeSendableBox(made)
            Parallelism.allCores.forEachItem(ops.count) { _, i in
                slots.value[i] = Result { try Self.makeOperator(ops[i], file: file, layouts: layouts) }
            }
        }
        operators = try made.map { try $0!.get() }
    }

    /// The operator of plan op `op`, its weights packed from `file`, or read
    /// in place where the file stores them in the op's kernel layout
    /// (`layouts`: the plan's `kernelLayouts`, the rule `movq convert` wrote them by).
    private static func makeOperator(_ op: PlanOp, file: PackedFile, layouts: [String: TensorLayout]) throws -> Operator {
        func weights<R>(_ name: String, shape: [Int], _ body: (StoredWeights) throws -> R) throws -> R {
            try file.withWeights(name, shape: shape, kernelLayout: layouts[name] ?? .plain, body)
        }
        func conv(_ w: ConvWeights, _ make: (StoredWeights, UnsafeBufferPointer<Float>) -> Operator) throws -> Operator {
            try weights(w.weightName, shape: w.weightShape) { wt in
                try file.withBias(of: w) { b in make(wt, b) }
            }
        }
        switch op {
        case .conv(let w, _, _, _):
            return try conv(w) { .conv(ConvOperator(weight: $0, bias: $1, inChannels: w.inChannels, outChannels: w.outChannels, kernel: w.kernel)) }
        case .upsampleConv(let w, _, _):
            return try conv(w) { .upsampleConv(UpsampleConvOperator(weight: $0, bias: $1, inChannels: w.inChannels, outChannels: w.outChannels)) }
        case .downsampleConv(let w, _, _):
            return try conv(w) { wt, b in
                wt.withFloats { .downsampleConv(DownsampleConvOperator(weight: $0, bias: b, inChannels: w.inChannels, outChannels: w.outChannels)) }
            }
        case .averagePool: return .averagePool(AveragePoolOperator())
        case .modulation(let n, _, _, _):
            let y = n.convY!, b = n.convB!
            return .modulation(ModulationOperator(
                channels: n.channels, conditionChannels: y.inChannels,
                weights: (try file.floatArray(y.weightName, shape: y.weightShape), try file.floatArray(b.weightName, shape: b.weightShape)),
                biases: (try file.floatArray(y.biasName, shape: [n.channels]), try file.floatArray(b.biasName, shape: [n.channels]))))
        case .groupNorm(let n, _, _, _, _):
            return .groupNorm(GroupNormOperator(gamma: try file.floatArray(n.gammaName, shape: [n.channels]),
                                                beta: try file.floatArray(n.betaName, shape: [n.channels]),
                                                groups: n.groups, eps: n.eps))
        case .attention(let a, _, _, _):
            let c = a.channels
            let p = try AttentionWeights.projections.map { proj in
                try weights(a.weightName(proj), shape: [c, c]) { w in
                    try file.withFloats(a.biasName(proj), shape: [c]) { ConvOperator(weight: w, bias: $0, inChannels: c, outChannels: c, kernel: 1) }
                }
            }
            return .attention(SpatialAttentionOperator(q: p[0], k: p[1], v: p[2], out: p[3], channels: c))
        case .embed, .linear, .layerNorm, .gelu, .selfAttention:
            throw MoVQError.unsupported("transformer op in a feature-map plan (TransformerExecutor runs those)")
        }
    }

    /// Bytes of the packed weights the operators keep.
    var residentBytes: Int {
        operators.reduce(0) { total, op in
            switch op {
            case .conv(let o): return total + o.residentBytes
            case .upsampleConv(let o): return total + o.residentBytes
            case .downsampleConv(let o): return total + o.residentBytes
            case .modulation(let o): return total + o.residentBytes
            case .groupNorm(let o): return total + o.residentBytes
            case .attention(let o): return total + o.residentBytes
            case .averagePool: return total
            }
        }
    }

    /// Floats each value of `plan` takes (feature maps padded, plain maps not).
    static func valueFloats(_ plan: ModelPlan) -> [Int] {
        plan.values.map { v in v.layout == .map ? FeatureMap.floats(channels: v.channels, height: v.height, width: v.width) : v.channels * v.height * v.width }
    }

    /// The arena layout of `plan` on `threads` threads (nothing allocated).
    func layout(_ plan: ModelPlan, threads: Int) -> ActivationLayout {
        let ctx = ExecutionContext(kernels: kernels, parallelism: Parallelism(threads: threads))
        let scratch = plan.ops.indices.map { i -> Int in
            let x = plan.values[plan.ops[i].inputs[0]]
            switch operators[i] {
            case .conv(let o): return o.scratchFloats(height: x.height, width: x.width, ctx)
            case .upsampleConv(let o): return o.scratchFloats(height: x.height, width: x.width, ctx)
            case .downsampleConv(let o): return o.scratchFloats(height: x.height, width: x.width)
            case .attention(let o): return o.scratchFloats(height: x.height, width: x.width, ctx)
            case .modulation, .groupNorm, .averagePool: return 0
            }
        }
        return ActivationLayout(plan, valueFloats: Self.valueFloats(plan), scratchFloats: scratch)
    }

    /// FLOPs the operators execute on one image of `plan` (Winograd and the
    /// upsample convolutions do fewer multiply-adds than the model FLOPs count).
    func executedFLOPs(_ plan: ModelPlan) -> Double {
        plan.ops.indices.reduce(0.0) { total, i in
            let x = plan.values[plan.ops[i].inputs[0]]
            switch operators[i] {
            case .conv(let o): return total + o.executedFLOPs(height: x.height, width: x.width)
            case .upsampleConv(let o): return total + o.executedFLOPs(height: x.height, width: x.width)
            default: return total + plan.flops(ofOp: i)
            }
        }
    }


    /// Runs image `index` of `input` (`[B, C, H, W]`) through the plan at its
    /// size; returns `[1, C', H', W']`. `stageDone(stage, stages)` follows
    /// each stage of the plan.
    func run(_ input: Tensor, image index: Int, threads: Int, profiler: Profiler?, stageDone: ((Int, Int) -> Void)?) -> Tensor {
        lock.lock(); defer { lock.unlock() }
        let (h, w) = (input.shape[2], input.shape[3]), key = [h, w, threads]
        if prepared?.key != key {
            prepared = nil  // free the old arena before allocating the new one
            let plan = planAt(h, w)
            var firstWriters = [Int](repeating: -1, count: plan.values.count)
            for (i, op) in plan.ops.enumerated().reversed() { for v in op.outputs { firstWriters[v] = i } }
            prepared = (key, plan, firstWriters, ActivationArena(layout(plan, threads: threads)))
        }
        let (plan, firstWriters, arena) = (prepared!.plan, prepared!.firstWriters, prepared!.arena)
        let ctx = ExecutionContext(kernels: kernels, parallelism: Parallelism(threads: threads), profiler: profiler)
        func map(_ v: Int) -> FeatureMap {
            let value = plan.values[v]
            return FeatureMap(base: arena.value(v), channels: value.channels, height: value.height, width: value.width)
        }
        let first = map(plan.input)
        first.zeroAllBorders()
        first.load(input, image: index)
        var stage = 0
        for (i, op) in plan.ops.enumerated() {
            for v in op.outputs where firstWriters[v] == i && plan.values[v].layout == .map { map(v).zeroAllBorders() }
            switch (op, operators[i]) {
            case (.conv(_, let x, let y, let r), .conv(let o)):
                o(map(x), into: map(y), residual: r.map(map), scratch: arena.scratch(i), ctx)
            case (.upsampleConv(_, let x, let y), .upsampleConv(let o)):
                o(map(x), into: map(y), scratch: arena.scratch(i)!, ctx)
            case (.downsampleConv(_, let x, let y), .downsampleConv(let o)):
                o(map(x), into: map(y), scratch: arena.scratch(i)!, ctx)
            case (.averagePool(let x, let y), .averagePool(let o)):
                o(map(x), into: map(y), ctx)
            case (.modulation(_, let z, let s, let t), .modulation(let o)):
                o(map(z), scale: arena.value(s), shift: arena.value(t), ctx)
            case (.groupNorm(_, let x, let y, let m, let silu), .groupNorm(let o)):
                let maps = m.map { (scale: UnsafePointer(arena.value($0.scale)), shift: UnsafePointer(arena.value($0.shift)),
                                    height: plan.values[$0.scale].height, width: plan.values[$0.scale].width) }
                o(map(x), into: map(y), modulation: maps, silu: silu, ctx)
            case (.attention(_, let n, let r, let y), .attention(let o)):
                o(map(n), residual: map(r), into: map(y), scratch: arena.scratch(i)!, ctx)
            default:
                fatalError("operator \(i) does not match its plan op")
            }
            if stage < plan.stageEnds.count && plan.stageEnds[stage] == i + 1 {
                stage += 1
                stageDone?(stage, plan.stageEnds.count)
            }
        }
        return map(plan.output).tensor()
    }


    /// Bytes of the arena kept from the last run (0 before the first).
    var arenaBytes: Int { lock.lock(); defer { lock.unlock() }; return prepared?.arena.layout.bytes ?? 0 }
}
