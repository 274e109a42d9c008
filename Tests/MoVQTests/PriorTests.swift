import XCTest
@testable import MoVQ

/// The MaskGIT prior against the PyTorch reference (Tools/make_prior_fixtures.py):
/// logits for post-LN/LayerNorm/GELU and pre-LN/RMSNorm/GEGLU variants, on
/// every tier and thread count, and the sampling loop replayed step by step.
final class PriorTests: XCTestCase {
    static let cases = ["prior_post_ln", "prior_pre_rms_geglu"]

    func convert(_ name: String) throws -> String {
        let out = TestPaths.scratch() + "/prior.mvq"
        try Converter.convertAny(source: TestPaths.fixture("\(name)/prior.pt"), output: out)
        return out
    }

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
