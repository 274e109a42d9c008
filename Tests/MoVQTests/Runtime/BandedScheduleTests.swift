import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Banded decodes and encodes (row bands, recomputation, GroupNorm
/// statistics merged band by band) are bit-identical to the full-map run,
/// on every tier, thread count, policy and band height, down to bands of
/// one row on odd sizes.
final class BandedScheduleTests: XCTestCase {
    func random(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
    }

    /// The fixtures converted: fp32 SCN, fp32 plain VQGAN, int8 SCN (int16 Winograd).
    func models() throws -> [String] {
        let d = TestPaths.scratch()
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: d + "/movq.mvq")
        try Converter.convert(source: TestPaths.fixture("tiny_vqgan/diffusers"), output: d + "/vqgan.mvq")
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: d + "/movq-int8.mvq", precision: .int8)
        return [d + "/movq.mvq", d + "/vqgan.mvq", d + "/movq-int8.mvq", TestPaths.demoModel]
    }

    func testBandedDecodeIsBitIdenticalToTheFullDecode() throws {
        for path in try models() {
            for tier in KernelTier.available {
                let m = try MoVQModel(contentsOf: path, backend: .simd(tier))
                let c = m.config
                for (h, w) in [(5, 3), (4, 7)] {
                    let z = try Tensor(shape: [1, c.vqEmbedDim, h, w], data: random(c.vqEmbedDim * h * w, seed: UInt64(h * 10 + w)))
                    m.bandOverride = nil
                    let full = try m.decode(latent: z, threads: 2)
                    XCTAssertTrue(m.decoder!.lastSchedule!.isFull)
                    for policy in BandPolicy.allCases.dropFirst() {
                        for rows in [1, 2, 5] {
                            m.bandOverride = .everywhere(policy, rows: rows)
                            for threads in [1, 2] {
                                let banded = try m.decode(latent: z, threads: threads)
                                XCTAssertEqual(banded.data, full.data, "\(path) \(tier.name) \(h)x\(w) \(policy) rows \(rows) threads \(threads)")
                            }
                            let s = m.decoder!.lastSchedule!, plan = AutoencoderPlans.decoder(c, latentHeight: h, latentWidth: w)
                            XCTAssertTrue(s.steps.contains { $0.bandRows < plan.values[plan.output].height * 2 && !$0.windowRows.isEmpty }, "\(policy)")
                            XCTAssertFalse(m.decoder!.layout(plan, s, threads: 2).overlaps)
                            let passes = s.executedFLOPs(plan) { m.decoder!.executedFLOPs(plan, op: $0) } / m.decoder!.executedFLOPs(plan)
                            // normOutputs recomputes only the SCN maps its GroupNorms compute per call (1x1 convs of z_q).
                            if policy >= .innerConvs { XCTAssertGreaterThan(passes, 1.02, "\(policy) recomputes") } else { XCTAssertLessThan(passes, 1.02) }
                        }
                    }
                }
            }
        }
    }

    func testBandedEncodeIsBitIdenticalToTheFullEncode() throws {
        for path in try models() {
            let m = try MoVQModel(contentsOf: path)
            guard m.config.hasEncoder else { continue }
            let c = m.config, f = c.downsampleFactor
            let x = try Tensor(shape: [1, c.inChannels, 3 * f, 2 * f], data: random(c.inChannels * 6 * f * f, seed: 9).map { $0 / 2 })
            m.bandOverride = nil
            let full = try m.encode(images: x, threads: 2)
            for policy in [BandPolicy.innerConvs, .everything] {
                m.bandOverride = .everywhere(policy, rows: 1)
                XCTAssertEqual(try m.encode(images: x, threads: 2).data, full.data, "\(path) encode \(policy)")
                XCTAssertTrue(m.encoder!.lastSchedule!.steps.contains { !$0.windowRows.isEmpty }, "\(path) encode \(policy) streams")
            }
        }
    }

    /// The planner keeps the full-map run when it fits, and under a lower
    /// limit picks a schedule whose arena fits, recomputing more.
    func testPlannerStaysUnderTheLimit() throws {
        let m = try MoVQModel(contentsOf: TestPaths.demoModel)
        let c = m.config, executor = m.decoder!
        let plan = AutoencoderPlans.decoder(c, latentHeight: 32, latentWidth: 32)
        let full = executor.layout(plan, threads: 2).bytes
        XCTAssertTrue(executor.plannedSchedule(plan, arenaLimit: Double(full), threads: 2)!.isFull)
        let flops = { (s: BandedSchedule) in s.executedFLOPs(plan) { executor.executedFLOPs(plan, op: $0) } }
        let fullFLOPs = executor.executedFLOPs(plan)
        var last = 1.0
        for fraction in [0.8, 0.5, 0.3] {
            guard let s = executor.plannedSchedule(plan, arenaLimit: Double(full) * fraction, threads: 2) else { continue }
            XCTAssertLessThanOrEqual(Double(executor.layout(plan, s, threads: 2).bytes), Double(full) * fraction)
            XCTAssertGreaterThanOrEqual(flops(s) / fullFLOPs, last - 1e-9, "less memory never recomputes less")
            last = flops(s) / fullFLOPs
        }
        XCTAssertGreaterThan(last, 1, "the tightest limit recomputes")
        XCTAssertNil(executor.plannedSchedule(plan, arenaLimit: 1000, threads: 2))
    }
}
