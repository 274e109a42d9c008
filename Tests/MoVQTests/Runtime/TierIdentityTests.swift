import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Outputs do not depend on the kernel tier: every fused multiply-add tier
/// this CPU runs, real (AVX-512, AVX2, ARM64's portable) and emulated (AVX2
/// with 16 and 4 lanes, `MoVQKernelsLaneEmulation`), gives the same bits for
/// whole decodes, encodes and both priors. Reductions whose order would follow
/// the vector width sum 16 virtual lanes in a fixed tree (`Lanes16Sum`).
/// x86's portable tier (no FMA) rounds differently and is only checked
/// against the reference elsewhere.
final class TierIdentityTests: XCTestCase {
    var tiers: [KernelTier] { Platform.fusedTiers.compactMap(KernelTier.named) }

    func random(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
    }

    func testTiersCoverThreeVectorWidths() throws {
        try XCTSkipIf(Platform.laneEmulationTiers.isEmpty, "no AVX2: only the real tiers run")
        XCTAssertEqual(Set(tiers.map(\.kernels.lanes)), [4, 8, 16])
    }

    func testDecodesAndEncodesAreIdenticalOnEveryTier() throws {
        let d = TestPaths.scratch()
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: d + "/movq.mvq")
        try Converter.convert(source: TestPaths.fixture("tiny_vqgan/diffusers"), output: d + "/vqgan.mvq")
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: d + "/movq-int8.mvq", precision: .int8)
        for path in [d + "/movq.mvq", d + "/vqgan.mvq", d + "/movq-int8.mvq", TestPaths.demoModel] {
            var first: (name: String, decoded: [Float], encoded: [Float]?)? = nil
            for tier in tiers {
                let m = try MoVQModel(contentsOf: path, backend: .simd(tier))
                let c = m.config, (h, w) = (5, 7)
                let z = try Tensor(shape: [1, c.vqEmbedDim, h, w], data: random(c.vqEmbedDim * h * w, seed: 3))
                let decoded = try m.decode(latent: z, threads: 2).data
                var encoded: [Float]? = nil
                if c.hasEncoder {
                    let f = c.downsampleFactor
                    let x = try Tensor(shape: [1, c.inChannels, 3 * f, 2 * f], data: random(c.inChannels * 6 * f * f, seed: 4).map { $0 / 2 })
                    encoded = try m.encode(images: x, threads: 2).data
                }
                if let f = first {
                    XCTAssertEqual(decoded, f.decoded, "\(path): decode on \(tier.name) differs from \(f.name)")
                    XCTAssertEqual(encoded, f.encoded, "\(path): encode on \(tier.name) differs from \(f.name)")
                } else {
                    first = (tier.name, decoded, encoded)
                }
            }
        }
    }

    func testPriorLogitsAndSamplesAreIdenticalOnEveryTier() throws {
        for name in PriorTests.cases {
            let path = try convertPrior(name)
            let tokens = try NPY.read(path: TestPaths.fixture("\(name)/tokens.npy")).values.map { Int32($0) }
            let classes = try NPY.read(path: TestPaths.fixture("\(name)/classes.npy")).values.map { Int($0) }
            var first: (String, [Float])? = nil
            for tier in tiers {
                let got = try MaskGITPrior(contentsOf: path, tier: tier).logits(tokens: tokens, classes: classes, threads: 2)
                if let (n, f) = first { XCTAssertEqual(got, f, "\(name): logits on \(tier.name) differ from \(n)") } else { first = (tier.name, got) }
            }
        }
        let gpt = try convertPrior("prior_gpt")
        var first: (String, [[Float]], [Int32])? = nil
        for tier in tiers {
            let prior = try GPTPrior(contentsOf: gpt, tier: tier)
            let logits = try prior.logits(tokens: [[1, 2, 3, 0], [3, 1, 0, 2]], classes: [0, 1], threads: 2)
            let sample = try prior.sample(classes: [0, 1], seeds: [7, 8], threads: 2).values
            if let (n, l, s) = first {
                XCTAssertEqual(logits, l, "gpt: cached logits on \(tier.name) differ from \(n)")
                XCTAssertEqual(sample, s, "gpt: sample on \(tier.name) differs from \(n)")
            } else {
                first = (tier.name, logits, sample)
            }
        }
    }
}
