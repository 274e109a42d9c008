import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The two executors over the transformer plans: the SIMD executor on every
/// tier against the reference executor (scalar loops, Double statistics),
/// for both MaskGIT variants and the autoregressive step with its cache.
final class TransformerExecutorTests: XCTestCase {
    func testMaskGITPlansRunAlikeOnBothExecutors() throws {
        for name in PriorTests.cases {
            let path = try convertPrior(name)
            let tokens = try NPY.read(path: TestPaths.fixture("\(name)/tokens.npy")).values.map { Int32($0) }
            let classes = try NPY.read(path: TestPaths.fixture("\(name)/classes.npy")).values.map { Int($0) }
            let file = try PackedFile(path: path)
            let c = try XCTUnwrap(file.header.prior)
            let plan = TransformerPlans.maskGIT(c, sequences: classes.count)
            var state: [Int: Tensor] = [:]
            let want = try ReferenceExecutor(file: file).run(plan, input: nil, tokens: tokens, classes: classes, step: 0, state: &state, threads: 2)
            XCTAssertEqual(want.count, c.channels)
            for tier in Platform.availableTiers {
                let prior = try MaskGITPrior(contentsOf: path, tier: KernelTier.named(tier)!)
                let got = try prior.logits(tokens: tokens, classes: classes, threads: 2)  // [B][N][c][K]
                let s = c.positions + 1
                var err: Float = 0, scale: Float = 0
                for ch in 0..<c.channels {
                    for i in classes.indices {
                        for q in 0..<c.positions {
                            for k in 0..<c.codes {
                                let w = want[ch].data[k * want[ch].shape[1] + i * s + 1 + q]
                                err = max(err, abs(got[((i * c.positions + q) * c.channels + ch) * c.codes + k] - w)); scale = max(scale, abs(w))
                            }
                        }
                    }
                }
                XCTAssertLessThan(err, 1e-4 * max(1, scale), "\(name) \(tier)")
            }
            let prior = try MaskGITPrior(contentsOf: path)
            XCTAssertFalse(TransformerExecutor.layout(plan, operators: prior.executor.operators, chunk: 16, threads: 3).overlaps)
        }
    }

    func testAutoregressiveStepsRunAlikeOnBothExecutors() throws {
        let path = try convertPrior("prior_gpt")
        let file = try PackedFile(path: path)
        let c = try XCTUnwrap(file.header.prior)
        let plan = TransformerPlans.gptStep(c, batch: 2)
        XCTAssertEqual(plan.state.count, 2 * c.layers, "one key and one value cache per layer")
        let inputs: [[Int]] = [[-1 - 1, -1 - 0], [3, 7], [5, 0], [12, 2]]  // class tokens, then codes
        var state: [Int: Tensor] = [:]
        let reference = ReferenceExecutor(file: file)
        for tier in Platform.availableTiers {
            let prior = try GPTPrior(contentsOf: path, tier: KernelTier.named(tier)!)
            let session = GPTPrior.Session(prior, batch: 2, threads: 2)
            state = [:]
            for (t, step) in inputs.enumerated() {
                let got = session.step(step)
                let want = try reference.run(plan, input: nil, tokens: step.map { Int32($0) }, classes: [], step: t, state: &state, threads: 1)[0]
                for i in 0..<2 {
                    for k in 0..<c.codes {
                        XCTAssertEqual(got[i][k], want.data[k * 2 + i], accuracy: 1e-4 * max(1, abs(want.data[k * 2 + i])), "\(tier) step \(t) image \(i)")
                    }
                }
            }
        }
        XCTAssertFalse(TransformerExecutor.layout(plan, operators: try GPTPrior(contentsOf: path).executor.operators, chunk: 16, threads: 2).overlaps)
    }
}
