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
    /// Bytes of the weights the operators read in place from the mapped
    /// file (they count in resident memory once a run has read them).
    let mappedBytes: Int
    /// The plan at an input size (the ops are the same at every size).
    let planAt: @Sendable (_ height: Int, _ width: Int) -> ModelPlan
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
                slots.value[i] = Result { try Self.makeOperator(ops[i], file: file, layouts: layouts, quads: kernels.quadWinograd != nil) }
            }
        }
        operators = try made.map { try $0!.get() }
        mappedBytes = plan.weights.reduce(0) { total, spec in
            guard let e = file.entry(spec.name), e.layout != TensorLayout.plain.rawValue,
                  let kernel = layouts[spec.name], e.layout == kernel.rawValue || e.layout == kernel.int16Form?.rawValue || e.layout == kernel.byteForm?.rawValue else { return total }
            return total + e.bytes
        }
    }

    /// The operator of plan op `op`, its weights packed from `file`, or read
    /// in place where the file stores them in the op's kernel layout
    /// (`layouts`: the plan's `kernelLayouts`, the rule `movq convert` wrote them by;
    /// `quads`: the tier runs byte-mode Winograd as u8 x s8 quads).
    private static func makeOperator(_ op: PlanOp, file: PackedFile, layouts: [String: TensorLayout], quads: Bool) throws -> Operator {
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
            return try conv(w) { .conv(ConvOperator(weight: $0, bias: $1, inChannels: w.inChannels, outChannels: w.outChannels, kernel: w.kernel, quads: quads)) }
        case .upsampleConv(let w, _, _):
            return try conv(w) { .upsampleConv(UpsampleConvOperator(weight: $0, bias: $1, inChannels: w.inChannels, outChannels: w.outChannels, quads: quads)) }
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
                    try file.withFloats(a.biasName(proj), shape: [c]) { LinearOperator(w, $0, outputs: c, inputs: c, quads: quads) }
                }
            }
            return .attention(SpatialAttentionOperator(q: p[0], k: p[1], v: p[2], out: p[3], channels: c))
        case .embed, .linear, .layerNorm, .gelu, .selfAttention:
            throw MoVQError.unsupported("transformer op in a feature-map plan (TransformerExecutor runs those)")
        }
    }

    /// How the 3x3 convolutions of int8 weights compute (`Int16WinogradPanel`): "u8s8" (byte mode, quads),
    /// "8-bit" (byte mode as int16 pairs), "int16", or nil when no operator runs an integer mode.
    var integerWinogradMode: String? {
        let panels = operators.compactMap { op -> Int16WinogradPanel? in
            switch op {
            case .conv(let o): return o.int16
            case .upsampleConv(let o): return o.int16
            default: return nil
            }
        }
        guard let p = panels.first else { return nil }
        return p.scaleStride == 0 ? "int16" : p.offsets != nil ? "u8s8" : "8-bit"
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

    /// Rows op `i`'s output is written in multiples of: 2 where tiles cover two rows (Winograd, upsampling), else 1.
    var granularity: [Int] {
        operators.map { op in
            switch op {
            case .conv(let o): return o.algorithm == .direct ? 1 : 2
            case .upsampleConv: return 2
            default: return 1
            }
        }
    }

    /// Scratch floats op `i` of `plan` needs for a call writing `rows` output rows.
    func scratchFloats(_ plan: ModelPlan, op i: Int, rows: Int, _ ctx: ExecutionContext) -> Int {
        let x = plan.values[plan.ops[i].inputs[0]]
        switch operators[i] {
        case .conv(let o): return o.scratchFloats(height: rows, width: x.width, ctx)
        case .upsampleConv(let o): return o.scratchFloats(height: (rows + 1) / 2, width: x.width, ctx)
        case .downsampleConv(let o): return o.scratchFloats(height: x.height, width: x.width)
        case .attention(let o): return o.scratchFloats(height: x.height, width: x.width, ctx)
        case .modulation, .groupNorm, .averagePool: return 0
        }
    }

    /// Every value stored, each op one band: the plain full-map execution.
    func fullSchedule(_ plan: ModelPlan) -> BandedSchedule {
        BandedSchedule(plan, stored: [Bool](repeating: true, count: plan.values.count), bandRows: { $0 }).sized(plan, granularity: granularity)
    }

    /// The arena layout of the full-map execution of `plan` on `threads` threads (nothing allocated).
    func layout(_ plan: ModelPlan, threads: Int) -> ActivationLayout { layout(plan, fullSchedule(plan), threads: threads) }

    /// The arena layout of `schedule`: stored values alive from the step
    /// that first writes them to the last that reads them; each step's
    /// window buffers and op scratch (the largest any of its calls needs)
    /// during that step.
    func layout(_ plan: ModelPlan, _ schedule: BandedSchedule, threads: Int) -> ActivationLayout {
        let ctx = ExecutionContext(kernels: kernels, parallelism: Parallelism(threads: threads))
        let steps = schedule.steps
        var first = [Int](repeating: Int.max, count: plan.values.count), last = [Int](repeating: -1, count: plan.values.count)
        first[plan.input] = -1
        for (t, s) in steps.enumerated() {
            for i in s.ops {
                for v in plan.ops[i].outputs where schedule.stored[v] { first[v] = min(first[v], t); last[v] = max(last[v], t) }
                for u in schedule.reads(plan, op: i) where schedule.stored[u] { last[u] = max(last[u], t) }
            }
            if case .statistics(let n) = s.sink, schedule.stored[n.value] { last[n.value] = max(last[n.value], t) }
        }
        for v in plan.outputs { last[v] = steps.count }
        let floats = Self.valueFloats(plan)
        let scratch = steps.map { s in
            windowFloats(plan, s) + s.ops.map { i in
                scratchFloats(plan, op: i, rows: s.callRows[i] ?? 0, ctx) + fusedModulationFloats(plan, schedule, op: i, rows: s.callRows[i] ?? 0)
            }.max()!
        }
        return ActivationLayout(values: plan.values.indices.map { first[$0] == Int.max ? nil : (first[$0], last[$0], floats[$0]) },
                                scratch: scratch, steps: steps.count)
    }

    /// Floats of the modulation maps GroupNorm op `i` computes for a call of `rows` rows (0 unless fused).
    func fusedModulationFloats(_ plan: ModelPlan, _ schedule: BandedSchedule, op i: Int, rows: Int) -> Int {
        guard case .groupNorm(_, let x, _, let m?, _) = plan.ops[i], schedule.isFused(plan, m.scale), rows > 0 else { return 0 }
        let map = plan.values[m.scale], r = GroupNormOperator.Modulation.rows(0..<rows, height: map.height, totalHeight: plan.values[x].height)
        return 2 * ActivationLayout.round(map.channels * (r.count + 1) * map.width)
    }

    /// Floats of step `s`'s window buffers, in value order.
    private func windowFloats(_ plan: ModelPlan, _ s: BandedSchedule.Step) -> Int {
        s.windowRows.keys.sorted().reduce(0) { t, v in
            let value = plan.values[v]
            return t + ActivationLayout.round(FeatureMap.floats(channels: value.channels, height: s.windowRows[v]!, width: value.width))
        }
    }

    /// FLOPs the operators execute on one image of `plan` (Winograd and the
    /// upsample convolutions do fewer multiply-adds than the model FLOPs
    /// count), each op once.
    func executedFLOPs(_ plan: ModelPlan) -> Double { plan.ops.indices.reduce(0.0) { $0 + executedFLOPs(plan, op: $1) } }

    /// FLOPs op `i` executes on one image.
    func executedFLOPs(_ plan: ModelPlan, op i: Int) -> Double {
        let x = plan.values[plan.ops[i].inputs[0]]
        switch operators[i] {
        case .conv(let o): return o.executedFLOPs(height: x.height, width: x.width)
        case .upsampleConv(let o): return o.executedFLOPs(height: x.height, width: x.width)
        default: return plan.flops(ofOp: i)
        }
    }

    /// A plan, its schedule and arena, kept for the next run of the same size, threads and limit.
    private struct Prepared {
        var key: [Int]
        var plan: ModelPlan
        var schedule: BandedSchedule
        var arena: ActivationArena
        /// The step that first writes each stored value (its borders are zeroed then).
        var firstStep: [Int]
    }
    private var prepared: Prepared? = nil

    /// Runs image `index` of `input` (`[B, C, H, W]`) through the plan at its
    /// size; returns `[1, C', H', W']`, executing `schedule` (of the plan at
    /// that size; nil: the full-map execution). `stageDone(stage, stages)`
    /// follows each stage of the plan, `stepDone(step, steps)` each pass of a banded run.
    func run(_ input: Tensor, image index: Int, threads: Int, profiler: Profiler?, schedule given: BandedSchedule? = nil,
             stageDone: ((Int, Int) -> Void)?, stepDone: ((Int, Int) -> Void)? = nil) -> Tensor {
        lock.lock(); defer { lock.unlock() }
        let (h, w) = (input.shape[2], input.shape[3])
        let key = [h, w, threads] + (given.map { s in s.stored.map { $0 ? 1 : 0 } + s.steps.map(\.bandRows) } ?? [])
        if prepared?.key != key {
            prepared = nil  // free the old arena before allocating the new one
            let plan = planAt(h, w)
            let schedule = given ?? fullSchedule(plan)
            var firstStep = [Int](repeating: -1, count: plan.values.count)
            for (t, s) in schedule.steps.enumerated().reversed() {
                for i in s.ops { for v in plan.ops[i].outputs where schedule.stored[v] { firstStep[v] = t } }
            }
            prepared = Prepared(key: key, plan: plan, schedule: schedule, arena: ActivationArena(layout(plan, schedule, threads: threads)),
                                firstStep: firstStep)
        }
        let p = prepared!
        let ctx = ExecutionContext(kernels: kernels, parallelism: Parallelism(threads: threads), profiler: profiler)
        let first = stored(p, p.plan.input)
        first.zeroAllBorders()
        first.load(input, image: index)
        let run = ScheduleRun(executor: self, prepared: p, ctx: ctx)
        var stage = 0
        let steps = p.schedule.steps
        for t in steps.indices {
            run.step(t)
            if !p.schedule.isFull { stepDone?(t + 1, steps.count) }
            // Ops before the next step's time are complete.
            let complete = t + 1 < steps.count ? steps[t + 1].time : p.plan.ops.count
            while stage < p.plan.stageEnds.count && p.plan.stageEnds[stage] <= complete {
                stage += 1
                stageDone?(stage, p.plan.stageEnds.count)
            }
        }
        return stored(p, p.plan.output).tensor()
    }

    /// The whole stored map of value `v`.
    private func stored(_ p: Prepared, _ v: Int) -> FeatureMap {
        let value = p.plan.values[v]
        return FeatureMap(base: p.arena.value(v), channels: value.channels, height: value.height, width: value.width)
    }

    /// One run of a schedule: the GroupNorm statistics found so far and the steps' execution.
    private final class ScheduleRun {
        let executor: SIMDExecutor, p: Prepared, ctx: ExecutionContext
        /// Complete per-channel statistics of GroupNorm inputs.
        var statistics: [BandedSchedule.Node: [Moments]] = [:]
        /// Each GroupNorm op's coefficients, once computed.
        var coefficients: [Int: GroupNormOperator.Coefficients] = [:]

        init(executor: SIMDExecutor, prepared: Prepared, ctx: ExecutionContext) { self.executor = executor; p = prepared; self.ctx = ctx }

        func step(_ t: Int) {
            let plan = p.plan, schedule = p.schedule, s = schedule.steps[t]
            for i in s.ops { for v in plan.ops[i].outputs where schedule.stored[v] && p.firstStep[v] == t && plan.values[v].layout == .map {
                executor.stored(p, v).zeroAllBorders()
            } }
            // Window buffers in value order, then the ops' scratch.
            var next = p.arena.scratch(t)
            var windows: [Int: FeatureMap] = [:]
            for v in s.windowRows.keys.sorted() {
                let value = plan.values[v]
                let m = FeatureMap(base: next!, channels: value.channels, height: s.windowRows[v]!, width: value.width)
                m.zeroAllBorders()
                windows[v] = m
                next = next! + ActivationLayout.round(FeatureMap.floats(channels: value.channels, height: m.height, width: m.width))
            }
            let scratch = next
            var moments: [BandedSchedule.Node: [Moments]] = [:]
            for n in s.statistics { moments[n] = [Moments](repeating: Moments(), count: plan.values[n.value].channels) }
            let walk = BandWalk(plan: plan, schedule: schedule, step: s, granularity: executor.granularity)
            func view(_ v: Int, _ rows: Range<Int>) -> FeatureMap {
                if schedule.stored[v] { return executor.stored(p, v).rows(rows) }
                let o = walk.origin[v]!
                return windows[v]!.rows((rows.lowerBound - o)..<(rows.upperBound - o))
            }
            walk.shift = { v, from, count in
                let m = windows[v]!
                for c in 0..<m.channels { m.plane(c).update(from: m.plane(c) + from * m.rowStride, count: count * m.rowStride) }
            }
            walk.perform = { i, rows in
                self.execute(i, rows: rows, view: view, scratch: scratch, moments: &moments)
                // The bottom border row of a streamed map is zero once its last row is written.
                for v in plan.ops[i].outputs where !schedule.stored[v] && rows.upperBound == plan.values[v].height {
                    let m = windows[v]!, row = rows.upperBound - walk.origin[v]! + 1
                    for c in 0..<m.channels { (m.plane(c) + row * m.rowStride).update(repeating: 0, count: m.rowStride) }
                }
            }
            walk.run()
            if case .statistics(let n) = s.sink, schedule.stored[n.value], moments[n] != nil {
                moments[n]!.withUnsafeMutableBufferPointer { GroupNormOperator.accumulate(executor.stored(p, n.value), into: $0.baseAddress!, ctx) }
            }
            for (n, m) in moments { statistics[n] = m }
        }

        /// Op `i` on output rows `rows` (all of them for ops that are not bandable).
        func execute(_ i: Int, rows: Range<Int>, view: (Int, Range<Int>) -> FeatureMap, scratch: UnsafeMutablePointer<Float>?,
                              moments: inout [BandedSchedule.Node: [Moments]]) {
            let plan = p.plan, arena = p.arena
            func whole(_ v: Int) -> FeatureMap { view(v, 0..<plan.values[v].height) }
            switch (plan.ops[i], executor.operators[i]) {
            case (.conv(_, let x, let y, let r), .conv(let o)):
                o(view(x, rows), into: view(y, rows), residual: r.map { view($0, rows) }, scratch: scratch, ctx)
            case (.upsampleConv(_, let x, let y), .upsampleConv(let o)):
                o(view(x, BandedSchedule.inputRows(plan.ops[i], output: rows)), into: view(y, rows), scratch: scratch!, ctx)
            case (.downsampleConv(_, let x, let y), .downsampleConv(let o)):
                o(whole(x), into: whole(y), scratch: scratch!, ctx)
            case (.averagePool(let x, let y), .averagePool(let o)):
                o(whole(x), into: whole(y), ctx)
            case (.modulation(_, let z, let s, let t), .modulation(let o)):
                o(whole(z), scale: arena.value(s), shift: arena.value(t), ctx)
            case (.groupNorm(_, let x, let y, let m, let silu), .groupNorm(let o)):
                if coefficients[i] == nil { coefficients[i] = o.coefficients(statistics[p.schedule.inputNode(op: i, value: x)]!) }
                let maps = m.map { m -> GroupNormOperator.Modulation in
                    let map = plan.values[m.scale]
                    guard p.schedule.isFused(plan, m.scale) else {
                        return .init(scale: arena.value(m.scale), shift: arena.value(m.shift), height: map.height, width: map.width)
                    }
                    // The maps' rows this band reads, computed here from the stored condition.
                    let w = p.schedule.writers[m.scale][0]
                    guard case .modulation(_, let z, _, _) = plan.ops[w], case .modulation(let mo) = executor.operators[w] else { fatalError("modulation op") }
                    let r = GroupNormOperator.Modulation.rows(rows, height: map.height, totalHeight: plan.values[x].height)
                    let size = ActivationLayout.round(map.channels * (r.count + 1) * map.width)
                    let scale = scratch!, shift = scratch! + size
                    mo(view(z, r), scale: scale, shift: shift, ctx)
                    return .init(scale: scale, shift: shift, height: map.height, width: map.width, firstRow: r.lowerBound, rows: r.count)
                }
                o.apply(view(x, rows), into: view(y, rows), coefficients[i]!, modulation: maps, firstRow: rows.lowerBound,
                        totalHeight: plan.values[x].height, silu: silu, ctx)
            case (.attention(_, let n, let r, let y), .attention(let o)):
                o(whole(n), residual: whole(r), into: whole(y), scratch: scratch!, ctx)
            default:
                fatalError("operator \(i) does not match its plan op")
            }
            for v in plan.ops[i].outputs {
                let n = p.schedule.outputNode(op: i, value: v)
                guard moments[n] != nil else { continue }
                moments[n]!.withUnsafeMutableBufferPointer { GroupNormOperator.accumulate(view(v, rows), into: $0.baseAddress!, ctx) }
            }
        }
    }

    /// Bytes of the arena kept from the last run (0 before the first).
    var arenaBytes: Int { lock.lock(); defer { lock.unlock() }; return prepared?.arena.layout.bytes ?? 0 }

    /// The schedule of the last run (nil before the first).
    var lastSchedule: BandedSchedule? { lock.lock(); defer { lock.unlock() }; return prepared?.schedule }
}
