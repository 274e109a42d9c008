import MoVQIO

/// How the SIMD executor runs a feature-map plan: which values it keeps
/// whole in the arena ("stored") and which stream through small window
/// buffers in row bands, in what order.
///
/// A run is a list of *steps*, each a pass over the rows of its sink,
/// band by band: an op whose output is stored (its streamed inputs are
/// recomputed from the stored values they derive from, as far as each band
/// needs, with the halo each 3x3 convolution reads), or the statistics of
/// a GroupNorm's streamed input. Within a step every row is computed once:
/// a window keeps the rows later bands still read. A GroupNorm whose input
/// streams needs its statistics before it can run, so every such
/// GroupNorm costs one more pass over the ops between the last stored map
/// and it; the planner (`BandPlanner`) picks what to store.
///
/// When everything is stored, each op is a step of one band: the plain
/// full-map execution. Both compute every value with the same kernels on
/// the same tile grid (bands start on even rows, where the Winograd tiles
/// start) and merge GroupNorm statistics row by row in row order
/// (`Moments`), so banded and full runs are bit-identical.
struct BandedSchedule: Sendable {
    /// A value after `version` of its writers (a GroupNorm in place writes a value twice).
    struct Node: Hashable, Sendable { var value: Int, version: Int }

    /// One pass.
    struct Step: Sendable {
        enum Sink: Sendable {
            /// Op `i`, whose outputs are stored.
            case op(Int)
            /// The statistics of a GroupNorm's streamed input.
            case statistics(Node)
        }
        var sink: Sink
        /// The ops the step runs, in plan order (the sink op last).
        var ops: [Int]
        /// Rows of the sink per band (its height: one band).
        var bandRows: Int
        /// Rows of the sink.
        var height: Int
        /// GroupNorm inputs whose statistics the step accumulates (it produces all their rows, in order).
        var statistics: [Node]
        /// The plan op after which the step runs (for progress).
        var time: Int
        /// Interior rows of each streamed value's window buffer (from the dry run).
        var windowRows: [Int: Int] = [:]
        /// The most output rows one call of each op writes (sizes its scratch).
        var callRows: [Int: Int] = [:]
    }

    let stored: [Bool]
    let steps: [Step]
    /// The ops writing each value, in order.
    let writers: [[Int]]

    /// Whether value `v` is an SCN modulation map computed inside each
    /// GroupNorm call, for the rows it reads, instead of stored (banded
    /// runs: stored, the maps of every GroupNorm a late pass reruns would
    /// all be alive at once).
    func isFused(_ plan: ModelPlan, _ v: Int) -> Bool {
        guard !stored[v], let w = writers[v].first, case .modulation = plan.ops[w] else { return false }
        return true
    }

    /// Whether every value is stored (the plain full-map execution).
    var isFull: Bool { !stored.contains(false) }

    /// The values op `i` reads when it runs, a fused modulation map replaced by what its op reads (the condition).
    func reads(_ plan: ModelPlan, op i: Int) -> [Int] {
        plan.ops[i].inputs.flatMap { u in isFused(plan, u) ? plan.ops[writers[u][0]].inputs : [u] }
    }

    /// The ops step `s` runs: its own and the modulation ops fused into its GroupNorms (counted once per step).
    func executedOps(_ plan: ModelPlan, _ s: Step) -> [Int] {
        s.ops + s.ops.flatMap { i in plan.ops[i].inputs.filter { isFused(plan, $0) && plan.ops[writers[$0][0]].outputs[0] == $0 }.map { writers[$0][0] } }
    }

    /// The node op `i` reads for value `u`: `u` after its writers before `i`.
    func inputNode(op i: Int, value u: Int) -> Node { Node(value: u, version: writers[u].filter { $0 < i }.count) }

    /// The node op `i` writes for value `v`.
    func outputNode(op i: Int, value v: Int) -> Node { Node(value: v, version: writers[v].filter { $0 <= i }.count) }

    /// The ops writing each value of `plan`, in order.
    static func writers(_ plan: ModelPlan) -> [[Int]] {
        var writers = [[Int]](repeating: [], count: plan.values.count)
        for (i, op) in plan.ops.enumerated() { for v in op.outputs { writers[v].append(i) } }
        return writers
    }

    /// The rows of its input `op` reads (border rows excluded) to write its output rows `rows`.
    static func inputRows(_ op: PlanOp, output rows: Range<Int>) -> Range<Int> {
        if case .upsampleConv = op { return (rows.lowerBound / 2)..<((rows.upperBound + 1) / 2) }
        return rows
    }

    /// Ops that can run on a band of rows (the rest need stored inputs and
    /// outputs; modulation maps are computed by the GroupNorm that reads them).
    static func bandable(_ op: PlanOp) -> Bool {
        switch op {
        case .conv, .upsampleConv, .groupNorm, .modulation: return true
        default: return false
        }
    }

    /// Values that may stream: feature maps written and read only by bandable ops, not the plan's input or outputs.
    static func streamable(_ plan: ModelPlan) -> [Bool] {
        var ok = plan.values.map { $0.layout == .map }
        ok[plan.input] = false
        for v in plan.outputs + plan.state { ok[v] = false }
        for op in plan.ops where !bandable(op) { for v in op.inputs + op.outputs { ok[v] = false } }
        // Modulation maps may be fused into their GroupNorm (their `.plain` layout is not a window's).
        for op in plan.ops { if case .modulation(_, _, let s, let t) = op { ok[s] = true; ok[t] = true } }
        return ok
    }

    /// The steps for `plan` with values `stored` and `bandRows(height)` rows
    /// per band for a sink `height` rows high.
    init(_ plan: ModelPlan, stored: [Bool], bandRows: (Int) -> Int) {
        self.stored = stored
        let writers = Self.writers(plan)
        self.writers = writers
        var known = Set<Node>()
        var steps: [Step] = []
        let me = BandedSchedule(stored: stored, steps: [], writers: writers)
        // GroupNorm inputs, each the node its GroupNorm reads.
        var normInputs = Set<Node>()
        for (i, op) in plan.ops.enumerated() { if case .groupNorm(_, let x, _, _, _) = op { normInputs.insert(me.inputNode(op: i, value: x)) } }

        /// Streamed ops `nodes` derive from, back to stored values.
        func ancestors(_ nodes: [Node]) -> Set<Int> {
            var ops = Set<Int>(), stack = nodes.filter { !stored[$0.value] }
            while let n = stack.popLast() {
                let w = writers[n.value][n.version - 1]
                guard ops.insert(w).inserted else { continue }
                for u in plan.ops[w].inputs where !stored[u] && !me.isFused(plan, u) { stack.append(me.inputNode(op: w, value: u)) }
            }
            return ops
        }
        func addStep(_ sink: Step.Sink, ops: Set<Int>, time: Int, height: Int) {
            // Every node the step writes comes out whole, in row order: collect the statistics still missing.
            var stats: [Node] = []
            for i in ops.sorted() {
                for v in plan.ops[i].outputs {
                    let n = me.outputNode(op: i, value: v)
                    if normInputs.contains(n) && !known.contains(n) { stats.append(n); known.insert(n) }
                }
            }
            if case .statistics(let n) = sink, !known.contains(n) { stats.append(n); known.insert(n) }
            let streams = ops.contains { plan.ops[$0].outputs.contains { !stored[$0] } }
            steps.append(Step(sink: sink, ops: ops.sorted(), bandRows: streams ? max(1, min(height, bandRows(height))) : height,
                              height: height, statistics: stats, time: time))
        }
        for (i, op) in plan.ops.enumerated() {
            if case .groupNorm(_, let x, _, _, _) = op {
                let n = me.inputNode(op: i, value: x)
                if !known.contains(n) { addStep(.statistics(n), ops: ancestors([n]), time: i, height: plan.values[x].height) }
            }
            guard op.outputs.contains(where: { stored[$0] }) else { continue }
            precondition(op.outputs.allSatisfy { stored[$0] }, "an op writes stored and streamed values")
            let inputs = op.inputs.map { me.inputNode(op: i, value: $0) }
            addStep(.op(i), ops: ancestors(inputs).union([i]), time: i, height: plan.values[op.outputs[0]].height)
        }
        // A streamed op reading a stored value must see the version it expects: no writer of that value between them.
        for s in steps {
            for i in s.ops {
                for u in plan.ops[i].inputs where stored[u] {
                    precondition(!writers[u].contains { $0 > i && $0 < s.time }, "value \(u) is overwritten before a recomputation reads it")
                }
            }
        }
        self.steps = steps
    }

    private init(stored: [Bool], steps: [Step], writers: [[Int]]) { self.stored = stored; self.steps = steps; self.writers = writers }

    /// With the window sizes and call rows of `walk`'s dry run filled in.
    func sized(_ plan: ModelPlan, granularity: [Int]) -> BandedSchedule {
        var sized = steps
        for t in sized.indices {
            let walk = BandWalk(plan: plan, schedule: self, step: sized[t], granularity: granularity)
            walk.run()
            sized[t].windowRows = walk.windowRows
            sized[t].callRows = walk.callRows
        }
        return BandedSchedule(stored: stored, steps: sized, writers: writers)
    }

    /// FLOPs the steps execute (`flops` of each op), counting each op once per step it runs in.
    func executedFLOPs(_ plan: ModelPlan, _ flops: (Int) -> Double) -> Double {
        steps.reduce(0.0) { t, s in executedOps(plan, s).reduce(t) { $0 + flops($1) } }
    }
}

/// One step's walk over its sink's rows: which rows of which value each op
/// writes, when, and which rows each window keeps. The executor runs it
/// with `perform` set; the planner runs it without (a dry run that sizes
/// the windows), so both see the same rows.
final class BandWalk {
    let plan: ModelPlan, schedule: BandedSchedule, step: BandedSchedule.Step
    /// Rows an op's output is written in multiples of (2 for Winograd tiles and upsampling, else 1).
    let granularity: [Int]
    /// Output rows each op of the step has written.
    private(set) var done: [Int: Int] = [:]
    /// Per streamed value: the global row its window's interior row 0 holds, and the rows written so far.
    private(set) var origin: [Int: Int] = [:], filled: [Int: Int] = [:]
    private(set) var windowRows: [Int: Int] = [:], callRows: [Int: Int] = [:]
    /// Runs op `i` on output rows `rows`.
    var perform: ((_ op: Int, _ rows: Range<Int>) -> Void)?
    /// Moves window rows `from ..< from + count` (padded rows, every plane) of `value` to the top.
    var shift: ((_ value: Int, _ from: Int, _ count: Int) -> Void)?
    /// After each band: (band, bands).
    var bandDone: ((Int, Int) -> Void)?
    /// Readers of each value within the step, with whether they read a row above and below (3x3 and upsampling).
    private var readers: [Int: [Int]] = [:]

    init(plan: ModelPlan, schedule: BandedSchedule, step: BandedSchedule.Step, granularity: [Int]) {
        self.plan = plan; self.schedule = schedule; self.step = step; self.granularity = granularity
        for i in step.ops {
            done[i] = 0
            for u in plan.ops[i].inputs { readers[u, default: []].append(i) }
            for v in plan.ops[i].outputs where !schedule.stored[v] { origin[v] = 0; filled[v] = 0 }
        }
    }

    /// The sink's rows, band by band.
    func run() {
        let height = step.height
        let bands = (height + step.bandRows - 1) / step.bandRows
        for b in 0..<bands {
            let target = min(height, (b + 1) * step.bandRows)
            switch step.sink {
            case .op(let i): produce(i, upTo: target)
            case .statistics(let n): ensure(n, upTo: target)
            }
            bandDone?(b + 1, bands)
        }
    }

    /// The rows of input `u` op `i` reads to write its output rows `rows`, border rows excluded.
    func inputRows(op i: Int, value u: Int, output rows: Range<Int>) -> Range<Int> { BandedSchedule.inputRows(plan.ops[i], output: rows) }

    /// Whether op `i` reads the rows above and below `inputRows` of `u`.
    func readsBorderRows(op i: Int, value u: Int) -> Bool {
        switch plan.ops[i] {
        case .conv(let w, let x, _, _): return w.kernel == 3 && x == u
        case .upsampleConv: return true
        default: return false
        }
    }

    private func ensure(_ n: BandedSchedule.Node, upTo r: Int) {
        guard !schedule.stored[n.value] else { return }
        produce(schedule.writers[n.value][n.version - 1], upTo: r)
    }

    private func produce(_ i: Int, upTo r: Int) {
        let op = plan.ops[i], out = op.outputs[0], height = plan.values[out].height, g = granularity[i]
        let a = done[i]!, b = min(height, (r + g - 1) / g * g)
        guard a < b else { return }
        for u in op.inputs where !schedule.stored[u] && !schedule.isFused(plan, u) {
            let rows = inputRows(op: i, value: u, output: a..<b)
            ensure(schedule.inputNode(op: i, value: u), upTo: min(plan.values[u].height, rows.upperBound + (readsBorderRows(op: i, value: u) ? 1 : 0)))
        }
        if !schedule.stored[out] { makeRoom(out, writing: a..<b) }
        perform?(i, a..<b)
        done[i] = b
        callRows[i] = max(callRows[i] ?? 0, b - a)
        if !schedule.stored[out] { filled[out] = max(filled[out]!, b) }
    }

    /// Drops window rows of `v` no reader needs any more, then records the span writing `rows` takes.
    private func makeRoom(_ v: Int, writing rows: Range<Int>) {
        // Each reader's next call starts at its own progress; its view starts a row above that.
        var keep = rows.lowerBound - 1
        for c in readers[v] ?? [] {
            let start = inputRows(op: c, value: v, output: done[c]!..<done[c]!).lowerBound
            keep = min(keep, start - 1)
        }
        keep = max(-1, keep)
        let o = origin[v]!
        if keep > o - 1 {
            shift?(v, keep - (o - 1), filled[v]! - keep)
            origin[v] = keep + 1
        }
        // Padded rows up to the bottom border row of `rows` plus one of kernel overrun.
        windowRows[v] = max(windowRows[v] ?? 0, rows.upperBound - origin[v]! + 1)
        // The dry run sized the window the executor allocated; a real walk never outgrows it.
        precondition(perform == nil || windowRows[v]! <= step.windowRows[v] ?? 0, "window of value \(v) outgrows its dry run")
    }
}
