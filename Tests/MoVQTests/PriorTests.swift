import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The MaskGIT prior against the PyTorch reference (Tools/make_prior_fixtures.py):
/// logits for post-LN/LayerNorm/GELU and pre-LN/RMSNorm/GEGLU variants, on
/// every tier and thread count, and the sampling loop replayed step by step.
final class PriorTests: XCTestCase {
    static let cases = ["prior_post_ln", "prior_pre_rms_geglu"]

    func convert(_ name: String) throws -> String { try convertPrior(name) }

    func testLogitsMatchReferenceOnEveryTier() throws {
        for name in Self.cases {
            let path = try convert(name)
            let tokens = try NPY.read(path: TestPaths.fixture("\(name)/tokens.npy")).values.map { Int32($0) }
            let classes = try NPY.read(path: TestPaths.fixture("\(name)/classes.npy")).values.map { Int($0) }
            let want = try NPY.read(path: TestPaths.fixture("\(name)/logits.npy")).values.map { Float($0) }
            var first: [Float]? = nil
            for tier in Platform.availableTiers {
                let prior = try MaskGITPrior(contentsOf: path, kernels: Platform.kernels(named: tier)!)
                for threads in [1, 3] {
                    let got = try prior.logits(tokens: tokens, classes: classes, threads: threads)
                    XCTAssertEqual(got.count, want.count)
                    let scale = want.map { abs($0) }.max()!
                    let err = zip(got, want).map { abs($0 - $1) }.max()!
                    XCTAssertLessThan(err, 1e-4 * max(1, scale), "\(name) \(tier) threads \(threads): max abs error \(err) at scale \(scale)")
                    if threads == 1 { first = got } else { XCTAssertEqual(got, first, "\(name) \(tier): thread count changed the logits") }
                }
            }
            // One sequence alone gives the same logits as inside the batch.
            let prior = try MaskGITPrior(contentsOf: path)
            let n = tokens.count / 2
            let both = try prior.logits(tokens: tokens, classes: classes, threads: 2)
            let second = try prior.logits(tokens: Array(tokens[n...]), classes: [classes[1]], threads: 2)
            XCTAssertEqual(Array(both[(both.count / 2)...]), second)
        }
    }

    /// int8 priors run their linears as int16 GEMMs, or u8 x s8 on VNNI tiers
    /// (per-token dynamic input quantization): close to the fp32 reference,
    /// independent of threads.
    func testInt8PriorStaysCloseToReference() throws {
        for name in Self.cases {
            let out = TestPaths.scratch() + "/prior-int8.mvq"
            try Converter.convertAny(source: TestPaths.fixture("\(name)/prior.pt"), output: out, precision: .int8)
            let tokens = try NPY.read(path: TestPaths.fixture("\(name)/tokens.npy")).values.map { Int32($0) }
            let classes = try NPY.read(path: TestPaths.fixture("\(name)/classes.npy")).values.map { Int($0) }
            let want = try NPY.read(path: TestPaths.fixture("\(name)/logits.npy")).values.map { Float($0) }
            for tier in Platform.availableTiers {
                let prior = try MaskGITPrior(contentsOf: out, kernels: Platform.kernels(named: tier)!)
                let k = Platform.kernels(named: tier)!
                let linears = prior.executor.operators.compactMap { op -> LinearOperator? in if case .linear(let l) = op { return l }; return nil }
                let integer = try XCTUnwrap(linears[0].integer, "int8 linears run in an integer mode")
                XCTAssertEqual(integer.quads, k.quadLinear != nil, "VNNI tiers run int8 linears as u8 x s8, others in int16 mode")
                let a = try prior.logits(tokens: tokens, classes: classes, threads: 1)
                XCTAssertEqual(a, try prior.logits(tokens: tokens, classes: classes, threads: 3), "\(name) \(tier)")
                let scale = want.map { abs($0) }.max()!, err = zip(a, want).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(err, 0.05 * scale, "\(name) \(tier): int8 logits error \(err) at scale \(scale)")
                XCTAssertGreaterThan(err, 0, "int8 weights change the logits a little")
            }
        }
    }

    /// The u8 x s8 linear (VNNI) against the same quantization computed with
    /// scalar integer math: bit-identical, on odd sizes and column counts.
    func testQuadLinearMatchesScalarIntegerReference() throws {
        let tiers = Platform.availableTiers.compactMap { Platform.kernels(named: $0) }.filter { $0.quadLinear != nil }
        guard let k = tiers.first else { throw XCTSkip("no tier with a quad dot product (AVX-512 VNNI) on this CPU") }
        var rng = SeededGenerator(seed: 3)
        for (o, i, p) in [(7, 13, 5), (20, 64, 33), (6, 3, 1)] {
            let q = (0..<(o * i)).map { _ in Int32.random(in: -127...127, using: &rng) }
            let s = (0..<o).map { _ in Float.random(in: 0.001...0.02, using: &rng) }
            let w = q.indices.map { Float(q[$0]) * s[$0 / i] }, b = (0..<o).map { _ in Float.random(in: -1...1, using: &rng) }
            let np = (p + k.chunk - 1) / k.chunk * k.chunk + 2 * k.chunk
            var x = [Float](repeating: 0, count: i * np), r = [Float](repeating: 0, count: o * np)
            for c in 0..<i { for j in 0..<p { x[c * np + j] = Float.random(in: -3...3, using: &rng) } }
            for c in 0..<o { for j in 0..<p { r[c * np + j] = Float.random(in: -1...1, using: &rng) } }
            var y = [Float](repeating: 0, count: o * np)
            try w.withUnsafeBufferPointer { wp in try b.withUnsafeBufferPointer { bp in try s.withUnsafeBufferPointer { sp in
                let l = LinearOperator(wp, bp, outputs: o, inputs: i, int8Scales: sp, quads: true)
                let quad = try XCTUnwrap(l.integer)
                XCTAssertTrue(quad.quads)
                XCTAssertEqual(quad.offsets?[0], 128 * (0..<i).reduce(0) { $0 + q[$1] })
                let ctx = ExecutionContext(kernels: k, parallelism: Parallelism(threads: 2))
                let pool = MapPool(), scratch = pool.scratch(l.scratchFloats(planeStride: np))
                x.withUnsafeMutableBufferPointer { xp in r.withUnsafeMutableBufferPointer { rp in y.withUnsafeMutableBufferPointer { yp in
                    l(xp.baseAddress!, yp.baseAddress!, residual: rp.baseAddress!, planeStride: np, positions: p, scratch: scratch, ctx)
                } } }
                withExtendedLifetime(pool) {}
            } } }
            for j in 0..<p {
                var mx: Float = 1e-30
                for c in 0..<i { mx = max(mx, abs(x[c * np + j])) }
                let inv = 127 / mx, colScale = mx / 127
                for oc in 0..<o {
                    var acc: Int32 = 0
                    for c in 0..<i { acc += q[oc * i + c] * Int32((x[c * np + j] * inv).rounded(.toNearestOrEven)) }
                    let want = Float(acc) * s[oc] * colScale + b[oc] + r[oc * np + j]
                    XCTAssertEqual(y[oc * np + j], want, "o \(oc) column \(j) of [\(o), \(i), \(p)]")
                }
            }
        }
    }

    func testPriorBadInputs() throws {
        let prior = try MaskGITPrior(contentsOf: try convert("prior_post_ln"))
        let c = prior.config, n = c.positions * c.channels
        assertThrows("outside 0...\(c.codes)") { try prior.logits(tokens: [Int32](repeating: Int32(c.codes + 1), count: n), classes: [0]) }
        assertThrows("class 99") { try prior.logits(tokens: [Int32](repeating: 0, count: n), classes: [99]) }
        assertThrows("tokens must be") { try prior.logits(tokens: [0, 1], classes: [0]) }
        assertThrows("not a MaskGIT prior") { try MaskGITPrior(contentsOf: TestPaths.demoModel) }
        assertThrows("not a VQ autoencoder") { try MoVQModel(contentsOf: try self.convert("prior_post_ln")) }
        // A prior checkpoint without its config JSON.
        let d = TestPaths.scratch()
        try FileManager.default.copyItem(atPath: TestPaths.fixture("prior_post_ln/prior.pt"), toPath: d + "/p.pt")
        assertThrows("--config") { try Converter.convertAny(source: d + "/p.pt", output: d + "/p.mvq") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/p.mvq"))
    }
}

/// Converts a prior fixture to a packed file in a scratch folder.
func convertPrior(_ name: String) throws -> String {
    let out = TestPaths.scratch() + "/prior.mvq"
    try Converter.convertAny(source: TestPaths.fixture("\(name)/prior.pt"), output: out)
    return out
}

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
                                             unconditionalClass: c.classes, settings: settings, noise: &noise,
                                             logits: { t, cl in try prior.logits(tokens: t, classes: cl, threads: threads) }).map { $0.last! }
        }
        let batch = try run([5, 9, 5], [1, 3, 1], threads: 2)
        XCTAssertEqual(batch[0], try run([5], [1], threads: 1)[0])
        XCTAssertEqual(batch[1], try run([9], [3], threads: 3)[0])
        XCTAssertEqual(batch[0], batch[2])
        XCTAssertNotEqual(batch[0], batch[1])
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

/// The autoregressive option against the PyTorch GPT reference: KV-cached
/// logits for every prefix, and raster-order sampling with temperature,
/// top-k and top-p replayed with the reference's uniforms.
final class AutoregressiveTests: XCTestCase {
    func testCachedLogitsMatchFullForwardOnEveryTier() throws {
        let path = try convertPrior("prior_gpt")
        let tokens = try NPY.read(path: TestPaths.fixture("prior_gpt/tokens.npy"))
        let classes = try NPY.read(path: TestPaths.fixture("prior_gpt/classes.npy")).values.map { Int($0) }
        let want = try NPY.read(path: TestPaths.fixture("prior_gpt/logits.npy"))  // [B, L + 1, K]
        let l = tokens.shape[1]
        let prefixes = (0..<2).map { i in tokens.values[(i * l)..<((i + 1) * l)].map { Int32($0) } }
        for tier in Platform.availableTiers {
            let prior = try GPTPrior(contentsOf: path, kernels: Platform.kernels(named: tier)!)
            for threads in [1, 2] {
                let got = try prior.logits(tokens: prefixes, classes: classes, threads: threads)
                for i in 0..<2 {
                    let w = want.values[(i * got[i].count)..<((i + 1) * got[i].count)].map { Float($0) }
                    let err = zip(got[i], w).map { abs($0 - $1) }.max()!, scale = w.map { abs($0) }.max()!
                    XCTAssertLessThan(err, 1e-4 * max(1, scale), "\(tier) image \(i) threads \(threads)")
                }
            }
        }
    }

    func testSamplingMatchesReference() throws {
        let prior = try GPTPrior(contentsOf: try convertPrior("prior_gpt"))
        let classes = try NPY.read(path: TestPaths.fixture("prior_gpt/classes.npy")).values.map { Int($0) }
        let u = try NPY.read(path: TestPaths.fixture("prior_gpt/sample_u.npy")).values
        let want = try NPY.read(path: TestPaths.fixture("prior_gpt/sample_tokens.npy")).values.map { Int32($0) }
        let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("prior_gpt/sample.json")))) as! [String: [Double]]
        let l = prior.length
        for i in 0..<2 {
            let s = AutoregressiveSettings(temperature: meta["temperature"]![i], topK: Int(meta["top_k"]![i]), topP: meta["top_p"]![i])
            // Replay: the cached forward, filtered and drawn with the reference's uniforms.
            var prefix: [Int32] = []
            for t in 0..<l {
                let logits = try prior.logits(tokens: [prefix], classes: [classes[i]])[0]
                let last = logits[(t * prior.config.codes)...]
                prefix.append(Int32(AutoregressiveSampler.draw(AutoregressiveSampler.filtered(last, s), u[i * l + t])))
            }
            XCTAssertEqual(prefix, Array(want[(i * l)..<((i + 1) * l)]), "image \(i)")
        }
        // Filters: top-k keeps k codes, top-p the smallest prefix reaching p.
        let x: [Float] = [0, 1, 2, 3, 4]
        XCTAssertEqual(AutoregressiveSampler.filtered(x[...], AutoregressiveSettings(topK: 2)).filter { $0.isFinite }.count, 2)
        XCTAssertEqual(AutoregressiveSampler.filtered(x[...], AutoregressiveSettings(topP: 0.5)).filter { $0.isFinite }.count, 1)
        XCTAssertEqual(AutoregressiveSampler.filtered(x[...], AutoregressiveSettings(topP: 0.9)).filter { $0.isFinite }.count, 3)
    }

    func testPerImageSeeds() throws {
        let prior = try GPTPrior(contentsOf: try convertPrior("prior_gpt"))
        let s = AutoregressiveSettings(temperature: 1, topK: 6, topP: 0.95)
        let batch = try prior.sample(classes: [1, 3], seeds: [11, 12], settings: s, threads: 2)
        let alone = try prior.sample(classes: [3], seeds: [12], settings: s, threads: 1)
        let per = batch.values.count / 2
        XCTAssertEqual(Array(batch.values[per...]), alone.values)
        XCTAssertEqual(batch.shape, [2, 2, 2, 3])
        assertThrows("not an autoregressive") { try GPTPrior(contentsOf: try convertPrior("prior_post_ln")) }
        assertThrows("autoregressive (gpt) prior") { try MaskGITPrior(contentsOf: try convertPrior("prior_gpt")) }
    }
}
