import Foundation
import MoVQIO

/// What a banded run streams (instead of storing whole) at one resolution,
/// from cheapest to most memory-saving.
package enum BandPolicy: Int, CaseIterable, Sendable, Comparable {
    /// Store every map.
    case none
    /// Stream the maps a GroupNorm or a 1x1 shortcut writes: each is
    /// computed once, band by band, where its one reader needs it (no
    /// recomputation).
    case normOutputs
    /// Also each resnet's first convolution's output: its in-place
    /// GroupNorm then needs one more pass over that convolution.
    case innerConvs
    /// Everything but the resnets' outputs (the upsampled maps too).
    case allButBlockOutputs
    /// Everything: every map at this resolution is recomputed from lower ones.
    case everything

    package static func < (a: BandPolicy, b: BandPolicy) -> Bool { a.rawValue < b.rawValue }
}

/// A banded run's parameters: a policy per map height and the band height.
package struct BandChoice: Sendable, Equatable, Hashable {
    /// Policy per value height (heights not listed: `.none`).
    package var policies: [Int: BandPolicy]
    /// Rows per band at the plan output's resolution (sinks at lower
    /// resolutions take proportionally fewer, at least one).
    package var rows: Int

    package init(policies: [Int: BandPolicy], rows: Int) { self.policies = policies; self.rows = rows }

    /// `policy` at every height, `rows` per band.
    package static func everywhere(_ policy: BandPolicy, rows: Int) -> BandChoice { BandChoice(policies: [-1: policy], rows: rows) }

    func policy(height: Int) -> BandPolicy { policies[height] ?? policies[-1] ?? .none }
}

extension SIMDExecutor {
    /// The values `choice` stores in `plan`.
    func stored(_ plan: ModelPlan, _ choice: BandChoice) -> [Bool] {
        let streamable = BandedSchedule.streamable(plan)
        let writers = BandedSchedule.writers(plan)
        let banded = choice.policies.values.contains { $0 != .none }
        return plan.values.indices.map { v in
            guard streamable[v] else { return true }
            if case .modulation = plan.ops[writers[v][0]] { return !banded }
            let first = plan.ops[writers[v][0]]
            let normOutput: Bool = {
                if case .groupNorm(_, let x, _, _, _) = first { return x != v }
                if case .conv(let w, _, _, nil) = first { return w.kernel == 1 }
                return false
            }()
            let blockOutput: Bool = { if case .conv(_, _, _, .some) = first { return true }; return false }()
            switch choice.policy(height: plan.values[v].height) {
            case .none: return true
            case .normOutputs: return !normOutput
            case .innerConvs: return !(normOutput || writers[v].count > 1)
            case .allButBlockOutputs: return blockOutput
            case .everything: return false
            }
        }
    }

    /// The schedule of `choice` on `plan`, sized by its dry run.
    func schedule(_ plan: ModelPlan, _ choice: BandChoice) -> BandedSchedule {
        let output = plan.values[plan.output].height
        return BandedSchedule(plan, stored: stored(plan, choice), bandRows: { h in max(1, choice.rows * h / max(1, output)) })
            .sized(plan, granularity: granularity)
    }

    /// The schedule that executes the fewest FLOPs with an arena of at most
    /// `limit` bytes on `threads` threads: the full-map execution when it
    /// fits, else a policy per resolution (more streaming at higher ones)
    /// and the tallest bands that fit. nil when not even the most frugal
    /// choice fits.
    func plannedSchedule(_ plan: ModelPlan, arenaLimit limit: Double, threads: Int) -> BandedSchedule? {
        let full = fullSchedule(plan)
        if Double(layout(plan, full, threads: threads).bytes) <= limit { return full }
        let streamable = BandedSchedule.streamable(plan)
        // Every schedule stores the maps that cannot stream whole.
        let floats = SIMDExecutor.valueFloats(plan)
        let whole = floats.indices.filter { !streamable[$0] }.map { floats[$0] }.max() ?? 0
        guard Double(whole) * 4 <= limit else { return nil }
        let heights = Set(plan.values.indices.filter { streamable[$0] }.map { plan.values[$0].height }).sorted(by: >)
        // Policies that never decrease with the height.
        var assignments: [[BandPolicy]] = [[]]
        for _ in heights {
            assignments = assignments.flatMap { a in BandPolicy.allCases.filter { a.isEmpty || $0 <= a.last! }.map { a + [$0] } }
        }
        let output = plan.values[plan.output].height
        let rowChoices = [256, 128, 64, 32, 16, 8, 4].filter { $0 <= output } .nilIfEmpty ?? [output]
        func choice(_ a: [BandPolicy], rows: Int) -> BandChoice {
            BandChoice(policies: Dictionary(uniqueKeysWithValues: zip(heights, a)), rows: rows)
        }
        let flops = { (s: BandedSchedule) in s.executedFLOPs(plan) { self.executedFLOPs(plan, op: $0) } }
        // Cheapest first; the first that fits with the shortest bands wins, then its tallest bands that fit.
        let ranked = assignments.dropFirst().map { a -> (policies: [BandPolicy], flops: Double) in
            (a, flops(BandedSchedule(plan, stored: stored(plan, choice(a, rows: output)), bandRows: { $0 })))
        }.sorted { $0.flops < $1.flops }
        for candidate in ranked {
            // The stored maps alone (no windows, no scratch) bound the arena from below: skip the dry run when they do not fit.
            let unsized = BandedSchedule(plan, stored: stored(plan, choice(candidate.policies, rows: output)), bandRows: { $0 })
            guard Double(layout(plan, unsized, threads: threads).bytes) <= limit else { continue }
            let shortest = schedule(plan, choice(candidate.policies, rows: rowChoices.last!))
            guard Double(layout(plan, shortest, threads: threads).bytes) <= limit else { continue }
            for rows in rowChoices.dropLast() {
                let s = schedule(plan, choice(candidate.policies, rows: rows))
                if Double(layout(plan, s, threads: threads).bytes) <= limit { return s }
            }
            return shortest
        }
        return nil
    }
}

extension Array {
    fileprivate var nilIfEmpty: Self? { isEmpty ? nil : self }
}
