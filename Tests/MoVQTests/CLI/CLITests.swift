import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The `movq` executable end to end: exit codes, outputs, no partial files.
final class CLITests: XCTestCase {
    var binary: String { CLI.binary }

    @discardableResult
    func movq(_ args: [String], binary: String? = nil, environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        try CLI.run(args, binary: binary, environment: environment)
    }

    func testConvertInspectDecodeEncode() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: binary), "movq not built at \(binary)")
        let d = TestPaths.scratch()
        let model = d + "/m.mvq"
        var r = try movq(["convert", TestPaths.fixture("tiny_multichannel/original.ckpt"), "-o", model])
        XCTAssertEqual(r.status, 0, r.err)
        r = try movq(["inspect", model, "--tensors", "--verify"])
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

    /// Issue 10, defects 9-11: shapes whose work cannot fit are refused from
    /// their sizes; a multi-file output is written all-or-nothing.
    func testHugeSizesAndPartialOutputSets() throws {
        let d = TestPaths.scratch()
        let model = d + "/m.mvq"
        XCTAssertEqual(try movq(["convert", TestPaths.fixture("tiny_multichannel/original.ckpt"), "-o", model]).status, 0)
        // 10. --size / --batch for random latents.
        for args in [["bench", model, "--size", "4611686018427387904"], ["bench", model, "--batch", "4611686018427387904"],
                     ["compare", model, model, "--size", "4611686018427387904"], ["bench", model, "--size", "65536", "--max-memory", "1G"]] {
            let r = try movq(args)
            XCTAssertEqual(r.status, 1, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains("needs an estimated") || r.err.contains("--batch 1...4096"), "\(args): \(r.err)")
        }
        // 9. A 32 MB index map [1, 2, 4096, 4096] and an 8192 x 8192 PNG are refused before the work starts.
        try writeFileAtomically(d + "/big.npy", NPY.encode(shape: [1, 2, 4096, 4096], descr: "|u1", body: Data(count: 2 * 4096 * 4096)))
        var r = try movq(["decode", model, "--indices", d + "/big.npy", "-o", d + "/big.png", "--max-memory", "2G"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("needs an estimated"), r.err)
        let bomb = Crafted.png([Crafted.ihdr(width: 8192, height: 8192), Crafted.chunk("IDAT", [0x78, 0x01]), Crafted.chunk("IEND", [])])
        try Data(bomb).write(to: URL(fileURLWithPath: d + "/bomb.png"))
        r = try movq(["encode", model, d + "/bomb.png", "-o", d + "/bomb.npy", "--max-memory", "2G"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("needs an estimated"), r.err)
        // 11. decode B = 2 where out-1.png cannot be written: out-0.png must not appear.
        try FileManager.default.createDirectory(atPath: d + "/out-1.png", withIntermediateDirectories: false)
        r = try movq(["decode", model, "--indices", TestPaths.fixture("tiny_multichannel/indices.npy"), "-o", d + "/out.png"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("out-1.png"), r.err)
        // encode --latent-output and sample --tokens into a missing folder: the first file must not appear.
        r = try movq(["decode", model, "--indices", TestPaths.fixture("tiny_multichannel/indices.npy"), "-o", d + "/img.png"])
        XCTAssertEqual(r.status, 0, r.err)
        r = try movq(["encode", model, d + "/img-0.png", "-o", d + "/idx.npy", "--latent-output", d + "/missing/z.npy"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("missing/z.npy"), r.err)
        r = try movq(["sample", "--batch", "1", "--steps", "1", "-o", d + "/s.png", "--tokens", d + "/missing/t.npy"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("missing/t.npy"), r.err)
        let left = try FileManager.default.contentsOfDirectory(atPath: d).sorted()
        XCTAssertEqual(left, ["big.npy", "bomb.png", "img-0.png", "img-1.png", "m.mvq", "out-1.png"])
    }

    /// The README's first command, smaller: the embedded demo prior and decoder.
    func testSampleDemoGridAndPerImageSeeds() throws {
        let d = TestPaths.scratch()
        var r = try movq(["sample", "--batch", "2", "--steps", "4", "--threads", "2", "-o", d + "/grid.png", "--tokens", d + "/t.npy"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("step 4/4"), r.err)
        let grid = try PNG.read(path: d + "/grid.png")
        XCTAssertEqual(grid.width, 2 * (32 + 2) + 2); XCTAssertEqual(grid.height, 10 * (32 + 2) + 2)  // 2 px padding
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

    /// The README's official-MaskGIT commands on the tiny flax fixtures: convert both
    /// checkpoints (the prior linked to its tokenizer), sample with the file's defaults,
    /// guidance and the null class refused, the tokenizer round trip.
    /// The spatial attention projects and attends in position blocks when a
    /// map is large; blocks (forced tiny here) give the same bytes as one.
    func testAttentionBlocksAreBitIdentical() throws {
        let d = TestPaths.scratch()
        XCTAssertEqual(try movq(["convert", TestPaths.fixture("tiny_movq/original.ckpt"), "-o", d + "/m.mvq"]).status, 0)
        for model in [d + "/m.mvq", TestPaths.demoModel] {
            var rng = SeededGenerator(seed: 5)
            let c = try MoVQModel(contentsOf: model).config, z = d + "/z.npy"
            try writeFileAtomically(z, NPY.encode(shape: [1, c.vqEmbedDim, 37, 29], float32: (0..<(c.vqEmbedDim * 37 * 29)).map { _ in Float.random(in: -2...2, using: &rng) }))
            var outputs: [Data] = []
            for block in ["", "1024", "40000"] {
                let out = d + "/out-\(block).npy"
                let r = try movq(["decode", model, "--latent", z, "-o", out, "--threads", "2", "-q"],
                                 environment: block.isEmpty ? nil : ["MOVQ_ATTENTION_BLOCK": block])
                XCTAssertEqual(r.status, 0, r.err)
                outputs.append(try Data(contentsOf: URL(fileURLWithPath: out)))
            }
            XCTAssertEqual(outputs[1], outputs[0], "\(model): blocks of one query block")
            XCTAssertEqual(outputs[2], outputs[0], "\(model): a few blocks")
        }
    }

    func testOfficialMaskGITFlaxFlow() throws {
        let d = TestPaths.scratch()
        try Data(#"{"norm_num_groups": 8}"#.utf8).write(to: URL(fileURLWithPath: d + "/tok.json"))
        try Data(#"{"codes": 40}"#.utf8).write(to: URL(fileURLWithPath: d + "/codes.json"))
        var r = try movq(["convert", TestPaths.fixture("maskgit_flax/tokenizer_checkpoint"), "--config", d + "/tok.json", "-o", d + "/tok.mvq", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("flax-layout"), r.out)
        r = try movq(["convert", TestPaths.fixture("maskgit_flax/transformer_checkpoint"), "--config", d + "/codes.json", "--decoder", "tok.mvq",
                      "-o", d + "/prior.mvq", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        r = try movq(["sample", d + "/prior.mvq", "--class", "7", "--batch", "2", "--threads", "2", "-o", d + "/s.png", "--tokens", d + "/t.npy"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("step 12/12"), r.err)  // the official default, recorded in the file
        XCTAssertEqual(try NPY.read(path: d + "/t.npy").shape, [2, 1, 4, 4])
        XCTAssertEqual(try PNG.read(path: d + "/s.png").width, 2 * (16 + 2) + 2)
        // The official JAX loop's draws: one PRNGKey for the batch, any thread count.
        r = try movq(["sample", d + "/prior.mvq", "--class", "7", "--batch", "2", "--rng", "jax", "--seed", "3", "--threads", "1", "-o", d + "/j.png", "--tokens", d + "/j.npy"])
        XCTAssertEqual(r.status, 0, r.err)
        r = try movq(["sample", d + "/prior.mvq", "--class", "7", "--batch", "2", "--rng", "jax", "--seed", "3", "--threads", "2", "-o", d + "/j2.png", "--tokens", d + "/j2.npy"])
        XCTAssertEqual(try NPY.read(path: d + "/j.npy").values, try NPY.read(path: d + "/j2.npy").values)
        r = try movq(["sample", d + "/prior.mvq", "--rng", "numpy", "-o", d + "/x.png"])
        XCTAssertTrue(r.err.contains("--rng must be"), r.err)
        r = try movq(["sample", d + "/prior.mvq", "--class", "7", "--cfg", "2", "-o", d + "/x.png"])
        XCTAssertTrue(r.err.contains("no unconditional class"), r.err)
        r = try movq(["sample", d + "/prior.mvq", "--class", "10", "-o", d + "/x.png"])
        XCTAssertTrue(r.err.contains("no unconditional class"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/x.png"))
        // Read with 30 codes, the vocabulary leaves 20 classes: too many for the every-class grid.
        try Data(#"{"codes": 30}"#.utf8).write(to: URL(fileURLWithPath: d + "/codes30.json"))
        r = try movq(["convert", TestPaths.fixture("maskgit_flax/transformer_checkpoint"), "--config", d + "/codes30.json", "-o", d + "/p30.mvq", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        r = try movq(["sample", d + "/p30.mvq", "--decoder", d + "/tok.mvq", "-o", d + "/x.png"])
        XCTAssertTrue(r.err.contains("choose one with --class"), r.err)
        r = try movq(["convert", TestPaths.fixture("maskgit_flax/tokenizer_checkpoint"), "-o", d + "/bad.mvq", "-q"])  // 16 channels, 32 groups
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("norm_num_groups"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: d + "/bad.mvq"))
    }
}
