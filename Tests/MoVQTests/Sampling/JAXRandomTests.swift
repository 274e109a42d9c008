import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The JAX random stream against jax 0.10.2 (Tools/fixtures/make_jax_random_fixtures.py):
/// keys, splits and bits exactly, Gumbel noise to float rounding, under both
/// `jax_threefry_partitionable` settings; and the official loop's token maps
/// on the tiny official-structure transformer.
final class JAXRandomTests: XCTestCase {
    static let settings = [("partitionable", true), ("original", false)]

    func testKeysBitsAndGumbelMatchJAX() throws {
        for (tag, partitionable) in Self.settings {
            let key = JAXKey(seed: 42, partitionable: partitionable)
            XCTAssertEqual(key.k1, 0); XCTAssertEqual(key.k2, 42)
            let keys = key.split(3)
            let wantKeys = try NPY.read(path: MaskGITFlaxTests.fixture("jax_\(tag)_keys.npy")).values.map { UInt32($0) }
            XCTAssertEqual(keys.flatMap { [$0.k1, $0.k2] }, wantKeys, tag)
            let wantBits = try NPY.read(path: MaskGITFlaxTests.fixture("jax_\(tag)_bits.npy")).values.map { UInt32($0) }
            XCTAssertEqual((0..<15).map { key.bits($0, of: 15) }, wantBits, "\(tag): random_bits of an odd count")
            let wantGumbel = try NPY.read(path: MaskGITFlaxTests.fixture("jax_\(tag)_gumbel.npy")).values.map { Float($0) }
            for (i, w) in wantGumbel.enumerated() {
                XCTAssertEqual(JAXKey.gumbel(keys[1].bits(i, of: 7)), w, accuracy: 2e-6 * max(1, abs(w)), "\(tag) gumbel \(i)")
            }
        }
    }

    /// The official loop from the same PRNGKey gives the same token maps,
    /// except where float rounding between XLA and us flips a near-tie.
    func testOfficialLoopTokenMaps() throws {
        let prior = try MaskGITPrior(contentsOf: try MaskGITFlaxTests.convertTransformer("transformer"))
        for (tag, partitionable) in Self.settings {
            let want = try NPY.read(path: MaskGITFlaxTests.fixture("jax_\(tag)_tokens.npy"))  // [seed, B, N]
            let seeds = want.shape[0], per = want.shape[1] * want.shape[2]
            var same = 0, identicalMaps = 0
            for s in 0..<seeds {
                let settings = MaskGITSettings(steps: 12, choiceTemperature: 4.5, stream: .jax(partitionable: partitionable))
                let got = try prior.sample(classes: [3, 7], seeds: [UInt64(s), UInt64(s)], settings: settings, threads: 2)
                let w = want.values[(s * per)..<((s + 1) * per)].map { Int32($0) }
                let agree = zip(got.values, w).filter { $0 == $1 }.count
                same += agree; if agree == per { identicalMaps += 1 }
                XCTAssertEqual(got, try prior.sample(classes: [3, 7], seeds: [UInt64(s), UInt64(s)], settings: settings, threads: 1))
            }
            let agreement = Double(same) / Double(seeds * per)
            print("JAX token agreement (\(tag)): \(same)/\(seeds * per) = \(agreement), batches identical \(identicalMaps)/\(seeds)")
            XCTAssertGreaterThan(agreement, 0.9, tag)
        }
    }
}
