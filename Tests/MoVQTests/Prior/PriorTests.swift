import XCTest
@testable import MoVQ
import MoVQKernelCore
@testable import MoVQIO

/// The MaskGIT prior against the PyTorch reference (Tools/fixtures/make_prior_fixtures.py):
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
                let prior = try MaskGITPrior(contentsOf: path, tier: KernelTier.named(tier)!)
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

    /// int8 priors run their linears on 8-bit inputs (per-token dynamic
    /// quantization): u8 x s8 on VNNI tiers, int16 pairs elsewhere; close to
    /// the fp32 reference, independent of threads.
    func testInt8PriorStaysCloseToReference() throws {
        for name in Self.cases {
            let out = TestPaths.scratch() + "/prior-int8.mvq"
            try Converter.convertAny(source: TestPaths.fixture("\(name)/prior.pt"), output: out, precision: .int8)
            let tokens = try NPY.read(path: TestPaths.fixture("\(name)/tokens.npy")).values.map { Int32($0) }
            let classes = try NPY.read(path: TestPaths.fixture("\(name)/classes.npy")).values.map { Int($0) }
            let want = try NPY.read(path: TestPaths.fixture("\(name)/logits.npy")).values.map { Float($0) }
            for tier in Platform.availableTiers {
                let prior = try MaskGITPrior(contentsOf: out, tier: KernelTier.named(tier)!)
                let k = Platform.kernels(named: tier)!
                let linears = prior.executor.operators.compactMap { op -> LinearOperator? in if case .linear(let l) = op { return l }; return nil }
                let integer = try XCTUnwrap(linears[0].integer, "int8 linears run in an integer mode")
                XCTAssertEqual(integer.quads, k.quadLinear != nil, "VNNI tiers run int8 linears as u8 x s8, others as int16 pairs")
                let a = try prior.logits(tokens: tokens, classes: classes, threads: 1)
                XCTAssertEqual(a, try prior.logits(tokens: tokens, classes: classes, threads: 3), "\(name) \(tier)")
                let scale = want.map { abs($0) }.max()!, err = zip(a, want).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(err, 0.05 * scale, "\(name) \(tier): int8 logits error \(err) at scale \(scale)")
                XCTAssertGreaterThan(err, 0, "int8 weights change the logits a little")
            }
        }
    }

    /// The int8 linear (u8 x s8 quads on VNNI, int16 pairs elsewhere) against
    /// the same 8-bit quantization computed with scalar integer math:
    /// bit-identical on every tier, on odd sizes and column counts.
    func testInt8LinearMatchesScalarIntegerReferenceOnEveryTier() throws {
        for k in Platform.availableTiers.compactMap({ Platform.kernels(named: $0) }) { try checkInt8Linear(k) }
    }

    func checkInt8Linear(_ k: KernelSet) throws {
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
            let q8 = q.map { Int8($0) }
            try q8.withUnsafeBufferPointer { q8p in try b.withUnsafeBufferPointer { bp in try s.withUnsafeBufferPointer { sp in
                let l = LinearOperator(.int8(q8p, scales: sp), bp, outputs: o, inputs: i, quads: k.quadLinear != nil)
                let integer = try XCTUnwrap(l.integer)
                XCTAssertEqual(integer.quads, k.quadLinear != nil, k.name)
                if integer.quads { XCTAssertEqual(integer.offsets?[0], 128 * (0..<i).reduce(0) { $0 + q[$1] }) }
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
                    XCTAssertEqual(y[oc * np + j], want, "\(k.name): o \(oc) column \(j) of [\(o), \(i), \(p)]")
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
            let prior = try GPTPrior(contentsOf: path, tier: KernelTier.named(tier)!)
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
