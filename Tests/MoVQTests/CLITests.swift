import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The `movq` executable end to end: exit codes, outputs, no partial files.
final class CLITests: XCTestCase {
    var binary: String {
        // The test bundle sits next to the built products.
        let bundle = Bundle(for: CLITests.self).bundleURL
        let candidates = [bundle.appendingPathComponent("movq"), bundle.deletingLastPathComponent().appendingPathComponent("movq")]
        return (candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]).path
    }

    @discardableResult
    func movq(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        let o = Pipe(), e = Pipe()
        p.standardOutput = o; p.standardError = e
        try p.run()
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    func testConvertInspectDecodeEncode() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binary), "movq not built at \(binary)")
        let d = TestPaths.scratch()
        let model = d + "/m.mvq"
        var r = try movq(["convert", TestPaths.fixture("tiny_multichannel/original.ckpt"), "-o", model])
        XCTAssertEqual(r.status, 0, r.err)
        r = try movq(["inspect", model])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("checksums OK"))
        XCTAssertTrue(r.out.contains("quantize.embedding.weight"))
        r = try movq(["inspect", model, "--json"])
        XCTAssertTrue(r.out.contains("\"blockOutChannels\""))
        // Threads 1 and 2 give byte-identical outputs.
        for t in ["1", "2"] {
            r = try movq(["decode", model, "--latent", TestPaths.fixture("tiny_multichannel/latent.npy"), "-o", d + "/t\(t).npy", "--threads", t])
            XCTAssertEqual(r.status, 0, r.err)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d + "/t1.npy")), try Data(contentsOf: URL(fileURLWithPath: d + "/t2.npy")))
        r = try movq(["decode", model, "--indices", TestPaths.fixture("tiny_multichannel/indices.npy"), "-o", d + "/img.png"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try PNG.read(path: d + "/img-0.png").width, 8)
        XCTAssertEqual(try PNG.read(path: d + "/img-1.png").height, 12)
        // Encode a PNG written from the decoded image, then decode the indices.
        r = try movq(["encode", model, d + "/img-0.png", d + "/img-1.png", "-o", d + "/idx.npy"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try NPY.read(path: d + "/idx.npy").shape, [2, 2, 3, 2])
        r = try movq(["decode", model, "--quantize", "--latent", TestPaths.fixture("tiny_multichannel/latent.npy"), "-o", d + "/q.npy"])
        XCTAssertEqual(r.status, 0, r.err)
    }

    func testBadInputsExitNonZeroWithoutPartialOutput() throws {
        let d = TestPaths.scratch()
        let model = d + "/m.mvq"
        XCTAssertEqual(try movq(["convert", TestPaths.fixture("tiny_movq/diffusers"), "-o", model]).status, 0)
        try writeFileAtomically(d + "/bad.npy", NPY.encode(shape: [1, 2, 2], int64: [0, 1, 2, 99]))
        var r = try movq(["decode", model, "--indices", d + "/bad.npy", "-o", d + "/out.png"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("index 99"), r.err)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1)
        r = try movq(["convert", TestPaths.fixture("bad/hostile.ckpt"), "-o", d + "/h.mvq"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("refused to unpickle"), r.err)
        r = try movq(["encode", model, TestPaths.fixture("tiny_movq/latent.npy"), "-o", d + "/i.npy"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("not a PNG"), r.err)
        r = try movq(["decode", model, "--latent", TestPaths.fixture("tiny_multichannel/latent.npy"), "-o", d + "/w.npy"])
        XCTAssertTrue(r.err.contains("latent must be [B, 3, h, w]"), r.err)
        let left = try FileManager.default.contentsOfDirectory(atPath: d).sorted()
        XCTAssertEqual(left, ["bad.npy", "m.mvq"])
    }

    /// The README's first command, smaller: the embedded demo prior and decoder.
    func testSampleDemoGridAndPerImageSeeds() throws {
        let d = TestPaths.scratch()
        var r = try movq(["sample", "--batch", "2", "--steps", "4", "--threads", "2", "-o", d + "/grid.png", "--tokens", d + "/t.npy"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("step 4/4"), r.err)
        let grid = try PNG.read(path: d + "/grid.png")
        XCTAssertEqual(grid.width, 2 * 32); XCTAssertEqual(grid.height, 10 * 32)
        let all = try NPY.read(path: d + "/t.npy")
        XCTAssertEqual(all.shape, [20, 2, 8, 8])
        XCTAssertTrue(all.values.allSatisfy { $0 >= 0 && $0 < 256 })
        // Row 3, column 1 used seed 0 + 3 * 2 + 1: sampled alone (one thread) it is the same tokens.
        r = try movq(["sample", "--class", "3", "--seed", "7", "--batch", "1", "--steps", "4", "--threads", "1",
                      "-o", d + "/one.png", "--tokens", d + "/one.npy"])
        XCTAssertEqual(r.status, 0, r.err)
        let one = try NPY.read(path: d + "/one.npy")
        XCTAssertEqual(Array(all.values[(7 * 128)..<(8 * 128)]), one.values)
        r = try movq(["sample", "--schedule", "bogus", "-o", d + "/x.png"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("unknown schedule"), r.err)
        r = try movq(["sample", "--class", "99", "-o", d + "/x.png"])
        XCTAssertTrue(r.err.contains("--class must be"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/x.png"))
    }
}
