import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Replays recorded uniforms (the Python reference's draws) in the order the sampler takes them.
struct RecordedUniforms: UniformSource {
    var values: [Double]
    var next = 0
    mutating func nextUniform() -> Double { defer { next += 1 }; return values[next] }
}

final class SamplerTests: XCTestCase {
    struct Replay {
        var start: [[Int32]], uniforms: [RecordedUniforms], steps: [[[Int32]]], logits: [[[Float]]]
        var settings: [MaskGITSettings], classes: [Int]
    }

    func load(_ name: String) throws -> Replay {
        func arr(_ f: String) throws -> NPY.Array { try NPY.read(path: TestPaths.fixture("\(name)/\(f)")) }
        let start = try arr("sample_start.npy"), u = try arr("sample_u.npy"), ug = try arr("sample_gumbel_u.npy")
        let steps = try arr("sample_steps.npy"), logits = try arr("sample_logits.npy")
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("\(name)/sample.json")))) as! [String: Any]
        let b = start.shape[0], n = start.shape[1], c = start.shape[2], t = steps.shape[1], k = logits.shape[4]
        var r = Replay(start: [], uniforms: [], steps: [], logits: [], settings: [], classes: meta["classes"] as! [Int])
        for i in 0..<b {
            r.start.append(start.values[(i * n * c)..<((i + 1) * n * c)].map { Int32($0) })
            var values: [Double] = []
            for s in 0..<t {
                let a: Int = (i * t + s) * n * c, g: Int = (i * t + s) * n
                values.append(contentsOf: u.values[a..<(a + n * c)])
                values.append(contentsOf: ug.values[g..<(g + n)])
            }
            r.uniforms.append(RecordedUniforms(values: values))
            r.steps.append((0..<t).map { s in steps.values[((i * t + s) * n * c)..<((i * t + s + 1) * n * c)].map { Int32($0) } })
            r.logits.append((0..<t).map { s in logits.values[((i * t + s) * n * c * k)..<((i * t + s + 1) * n * c * k)].map { Float($0) } })
            r.settings.append(MaskGITSettings(steps: t, temperature: Float(meta["temperature"] as! Double),
                                              choiceTemperature: Float(meta["choice_temperature"] as! Double),
                                              schedule: MaskSchedule(name: meta["schedule"] as! String)!,
                                              guidance: Float((meta["guidance"] as! [Double])[i])))
        }
        return r
    }

    /// The loop alone: the reference's own logits and uniforms, token maps compared at every step.
    func testLoopMatchesReferenceStepByStep() throws {
        for name in PriorTests.cases {
            let r = try load(name)
            let prior = try MaskGITPrior(contentsOf: try convertPrior(name))
            let c = prior.config
            for i in r.start.indices {
                var noise = [r.uniforms[i]]
                var settings = r.settings[i]
                settings.guidance = 0  // the recorded logits are already guided
                var step = 0
                let got = try MaskGITSampler.sample(initial: [r.start[i]], classes: [r.classes[i]], codes: c.codes, channels: c.channels,
                                                    unconditionalClass: c.classes, settings: settings, noise: &noise,
                                                    logits: { _, _ in defer { step += 1 }; return r.logits[i][step] })
                XCTAssertEqual(got[0].count, r.steps[i].count)
                for (s, (a, b)) in zip(got[0], r.steps[i]).enumerated() { XCTAssertEqual(a, b, "\(name) image \(i) step \(s)") }
                XCTAssertEqual(noise[0].next, noise[0].values.count, "every recorded draw used")
                XCTAssertFalse(got[0].last!.contains(Int32(c.codes)), "the result has no MASK left")
            }
        }
    }

    /// The loop with our transformer (and guidance as one batched forward) against the reference end to end.
    func testSamplingWithOurTransformerMatchesReference() throws {
        for name in PriorTests.cases {
            let r = try load(name)
            let prior = try MaskGITPrior(contentsOf: try convertPrior(name))
            let c = prior.config
            for i in r.start.indices {
                var noise = [r.uniforms[i]]
                let got = try MaskGITSampler.sample(initial: [r.start[i]], classes: [r.classes[i]], codes: c.codes, channels: c.channels,
                                                    unconditionalClass: c.classes, settings: r.settings[i], noise: &noise,
                                                    logits: { t, cl in try prior.logits(tokens: t, classes: cl, threads: 2) })
                XCTAssertEqual(got[0], r.steps[i], "\(name) image \(i)")
            }
        }
    }

    /// Image i of a batch equals the same seed sampled alone, for any thread count.
    func testPerImageSeedsAndThreads() throws {
        let prior = try MaskGITPrior(contentsOf: try convertPrior("prior_post_ln"))
        let c = prior.config
        let blank = [Int32](repeating: Int32(c.codes), count: c.positions * c.channels)
        let settings = MaskGITSettings(steps: 5, guidance: 2)
        func run(_ seeds: [UInt64], _ classes: [Int], threads: Int) throws -> [[Int32]] {
            var noise = seeds.map { SeededGenerator(seed: $0) }
            return try MaskGITSampler.sample(initial: seeds.map { _ in blank }, classes: classes, codes: c.codes, channels: c.channels,
                                             unconditionalClass: c.classes, settings: settings, noise: &noise, threads: threads,
                                             logits: { t, cl in try prior.logits(tokens: t, classes: cl, threads: threads) }).map { $0.last! }
        }
        let batch = try run([5, 9, 5], [1, 3, 1], threads: 2)
        XCTAssertEqual(batch[0], try run([5], [1], threads: 1)[0])
        XCTAssertEqual(batch[1], try run([9], [3], threads: 3)[0])
        XCTAssertEqual(batch[0], batch[2])
        XCTAssertNotEqual(batch[0], batch[1])
    }

    /// The vectorized draw equals its one-code-at-a-time reference bit for
    /// bit, on code counts around the 16-lane chunks, for uniforms across (0, 1).
    func testCategoricalDrawMatchesReference() {
        var rng = SeededGenerator(seed: 11)
        for k in [1, 2, 15, 16, 17, 31, 33, 100, 1000, 1024, 16384] {
            let logits = (0..<k).map { _ in Float(rng.nextUniform() * 24 - 12) }
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: CategoricalDraw.scratchCount(codes: k))
            defer { scratch.deallocate() }
            var drawn = Set<Int>()
            for (i, u) in ([1e-12, 0.5, 1 - 1e-12] + (0..<40).map { _ in rng.nextUniform() }).enumerated() {
                let t: Float = i % 2 == 0 ? 1 : 0.7
                let got = logits.withUnsafeBufferPointer { CategoricalDraw.draw($0.baseAddress!, codes: k, inverseTemperature: 1 / t, uniform: u, scratch: scratch) }
                let want = CategoricalDrawReference.draw(logits, inverseTemperature: 1 / t, uniform: u)
                XCTAssertEqual(got.token, want.token, "k \(k) u \(u)")
                XCTAssertEqual(got.logProbability.bitPattern, want.logProbability.bitPattern, "k \(k) u \(u)")
                XCTAssert((0..<k).contains(got.token))
                drawn.insert(got.token)
            }
            if k >= 100 { XCTAssertGreaterThan(drawn.count, 5, "draws spread over the codes") }
        }
        // The draw follows the distribution: two codes with probabilities 1/4, 3/4.
        let two: [Float] = [0, Float(Foundation.log(3.0))]
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: CategoricalDraw.scratchCount(codes: 2))
        defer { scratch.deallocate() }
        let ones = (0..<4000).filter { i in
            two.withUnsafeBufferPointer { CategoricalDraw.draw($0.baseAddress!, codes: 2, inverseTemperature: 1, uniform: (Double(i) + 0.5) / 4000, scratch: scratch).token } == 1
        }.count
        XCTAssertEqual(ones, 3000, accuracy: 2)
        let lp = two.withUnsafeBufferPointer { CategoricalDraw.draw($0.baseAddress!, codes: 2, inverseTemperature: 1, uniform: 0.1, scratch: scratch) }
        XCTAssertEqual(lp.token, 0); XCTAssertEqual(lp.logProbability, Float(Foundation.log(0.25)), accuracy: 1e-5)
    }

    func testSchedulesAndMaskCounts() {
        // MASKGIT.md: N = 256, T = 8, cosine -> unknown counts 251, 236, 212, 181, 142, 97, 49 after steps 0...6.
        var unknown = 256
        var counts: [Int] = []
        for t in 0..<7 {
            let g = MaskSchedule.cosine.gamma(Double(t + 1) / 8, unknownAtStart: 256)
            unknown = max(1, min(unknown - 1, Int((Float(256) * g).rounded(.down))))
            counts.append(unknown)
        }
        XCTAssertEqual(counts, [251, 236, 212, 181, 142, 97, 49])
        XCTAssertEqual(MaskSchedule(name: "pow2"), .power(2))
        XCTAssertNil(MaskSchedule(name: "bogus"))
        for s in [MaskSchedule.cosine, .linear, .power(3), .log, .exp] {
            XCTAssertEqual(s.gamma(1, unknownAtStart: 256), 1e-6, accuracy: 1e-6, "\(s) ends fully revealed")
            XCTAssertGreaterThan(s.gamma(0.1, unknownAtStart: 256), s.gamma(0.9, unknownAtStart: 256), "\(s) decreases")
        }
    }
}
