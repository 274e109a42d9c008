import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// What a new user trips over (issue 11), each through the real binary.
final class CLIUsabilityTests: XCTestCase {
    func movq(_ args: [String], binary: String? = nil, environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        try CLI.run(args, binary: binary, environment: environment)
    }

    // 1. A copied binary: a one-line error without its resources, works with them beside it.
    func testRelocatedBinaryFindsOrNamesItsDemoAssets() throws {
        let d = TestPaths.scratch()
        let copy = d + "/movq"
        try FileManager.default.copyItem(atPath: CLI.binary, toPath: copy)
        var r = try movq(["sample", "-o", d + "/s.png", "--batch", "1", "--steps", "1"], binary: copy)
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains("demo prior that ships with movq was not found"), r.err)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        r = try movq(["decode", "--indices", TestPaths.fixture("tiny_movq/indices.npy"), "-o", d + "/x.png"], binary: copy)
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("demo model"), r.err)
        let resources = URL(fileURLWithPath: CLI.binary).deletingLastPathComponent().appendingPathComponent("MoVQ_MoVQDemo.resources").path
        r = try movq(["sample", "-o", d + "/env.png", "--batch", "1", "--steps", "1", "--class", "0"], binary: copy, environment: ["MOVQ_DEMO_DIR": resources])
        XCTAssertEqual(r.status, 0, r.err)
        try FileManager.default.copyItem(atPath: resources, toPath: d + "/MoVQ_MoVQDemo.resources")
        r = try movq(["sample", "-o", d + "/s.png", "--batch", "1", "--steps", "1", "--class", "0"], binary: copy)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try PNG.read(path: d + "/s.png").width, 32 + 4)
    }

    // 2. diffusers layouts: fp16 variant name, .bin only, a weights file with its config beside it, wrong sources.
    func testDiffusersLayoutsAndSourceErrors() throws {
        let d = TestPaths.scratch(), fm = FileManager.default
        let vqgan = TestPaths.fixture("tiny_vqgan/diffusers")
        try fm.createDirectory(atPath: d + "/fp16", withIntermediateDirectories: false)
        try fm.copyItem(atPath: vqgan + "/diffusion_pytorch_model.safetensors", toPath: d + "/fp16/diffusion_pytorch_model.fp16.safetensors")
        try fm.copyItem(atPath: vqgan + "/config.json", toPath: d + "/fp16/config.json")
        var r = try movq(["convert", d + "/fp16", "-o", d + "/a.mvq", "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        try fm.createDirectory(atPath: d + "/bin/movq", withIntermediateDirectories: true)  // a pipeline folder with a .bin-only movq/
        try fm.copyItem(atPath: TestPaths.fixture("tiny_movq/original.ckpt"), toPath: d + "/bin/movq/diffusion_pytorch_model.bin")
        r = try movq(["convert", d + "/bin", "-o", d + "/b.mvq", "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        // The weights file alone: its config.json beside it gives the 8 groups shapes cannot show.
        r = try movq(["convert", vqgan + "/diffusion_pytorch_model.safetensors", "-o", d + "/c.mvq", "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try PackedFile(path: d + "/c.mvq").header.config?.normNumGroups, 8)
        r = try movq(["convert", vqgan + "/config.json", "-o", d + "/j.mvq"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("is a JSON file, not weights"), r.err)
        try fm.copyItem(atPath: TestPaths.fixture("bad/legacy.pt"), toPath: d + "/old.ckpt")  // a name without "legacy" in it
        r = try movq(["convert", d + "/old.ckpt", "-o", d + "/l.mvq"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("pre-1.6, non-zip"), r.err)
        r = try movq(["inspect", TestPaths.fixture("tiny_movq/original.ckpt")])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("movq convert"), r.err)
        XCTAssertFalse(fm.fileExists(atPath: d + "/j.mvq") || fm.fileExists(atPath: d + "/l.mvq"))
    }

    // 3. Progress: plain lines when stderr is not a terminal, nothing with --quiet.
    func testProgressLinesAndQuiet() throws {
        let d = TestPaths.scratch()
        try NPY.encode(shape: [1, 8, 4, 4], float32: (0..<128).map { Float($0 % 7) / 7 - 0.5 }).write(to: URL(fileURLWithPath: d + "/z.npy"))
        var r = try movq(["decode", "--latent", d + "/z.npy", "-o", d + "/x.npy", TestPaths.demoModel])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertFalse(r.err.contains("\r"), r.err)
        XCTAssertTrue(r.err.contains("decode: stage 1/"), r.err)
        XCTAssertTrue(r.err.contains("decoded [1, 3,"), r.err)
        r = try movq(["sample", "--batch", "1", "--steps", "2", "-o", d + "/s.png"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertFalse(r.err.contains("\r"), r.err)
        XCTAssertTrue(r.err.contains("sampling: step 1/2\u{20}") || r.err.contains("sampling: step 1/2 "), r.err)
        XCTAssertTrue(r.err.contains("\nsampling: step 2/2"), r.err)
        for args in [["sample", "--batch", "1", "--steps", "2", "-o", d + "/q.png", "--quiet"],
                     ["convert", TestPaths.fixture("tiny_vqgan/diffusers"), "-o", d + "/q.mvq", "-q"]] {
            r = try movq(args)
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertEqual(r.err, "", "\(args)")
        }
        r = try movq(["convert", TestPaths.fixture("tiny_vqgan/diffusers"), "-o", d + "/p.mvq"])
        XCTAssertTrue(r.err.contains("reading ") && r.err.contains("packing fp32 weights") && r.err.contains("writing "), r.err)
    }

    // 5. Help that matches the tool.
    func testHelpIsCurrent() throws {
        func words(_ s: String) -> String { s.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ") }
        let convert = words(try movq(["convert", "--help"]).out)
        XCTAssertTrue(convert.contains("fp32, fp16 or int8"), convert)
        XCTAssertTrue(convert.contains("pipeline folder") && convert.contains(".mvq to re-convert") && convert.contains("prior"), convert)
        let decode = words(try movq(["decode", "--help"]).out)
        XCTAssertTrue(decode.contains("avx512vnni"), decode)
        XCTAssertTrue(decode.contains("default: all cores"), decode)
        XCTAssertFalse(decode.contains("(default: \(ProcessInfo.processInfo.activeProcessorCount))"), decode)
    }

    // 6. Errors that say what to do; encode can crop or resize.
    func testErrorsSayWhatToDoAndEncodeFitsImages() throws {
        let d = TestPaths.scratch()
        let gpt = d + "/gpt.mvq", lone = d + "/lone.mvq"
        let fixture = TestPaths.fixture("prior_gpt")
        XCTAssertEqual(try movq(["convert", fixture + "/prior.pt", "--config", fixture + "/prior.json", "-o", gpt, "-q"]).status, 0)
        var r = try movq(["bench", gpt, "--runs", "1"])
        XCTAssertEqual(r.status, 0, r.err); XCTAssertTrue(r.out.contains("tokens/s"), r.out)
        r = try movq(["inspect", gpt])
        XCTAssertTrue(r.out.contains("kind: autoregressive (gpt) prior"), r.out)
        let mg = TestPaths.fixture("prior_post_ln")
        XCTAssertEqual(try movq(["convert", mg + "/prior.pt", "--config", mg + "/prior.json", "-o", lone, "-q"]).status, 0)
        r = try movq(["sample", lone, "-o", d + "/s.png"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("names no decoder: give the MoVQ its tokens are for with --decoder"), r.err)
        r = try movq(["sample", "--top-k", "5", "-o", d + "/s.png"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("--top-k does not apply to a MaskGIT prior"), r.err)
        r = try movq(["sample", gpt, "--steps", "3", "--decoder", TestPaths.demoModel, "-o", d + "/s.png"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("--steps does not apply to an autoregressive prior"), r.err)
        r = try movq(["sample", "--prior", "ar", "-o", d + "/s.png"])
        XCTAssertTrue(r.err.contains("holds a MaskGIT prior, not an autoregressive one"), r.err)
        r = try movq(["sample", "--class", "1", "--batch", "1", "--steps", "1", "-o", d + "/one.png"])
        XCTAssertTrue(r.err.contains("1 image: sampling"), r.err)
        // A 30x22 image for a model of factor 4: refused with the fix named, then cropped or resized.
        let odd = Image8(width: 30, height: 22, channels: 3, pixels: (0..<(30 * 22 * 3)).map { UInt8($0 % 251) })
        try PNG.encode(odd).write(to: URL(fileURLWithPath: d + "/odd.png"))
        r = try movq(["encode", d + "/odd.png", "-o", d + "/i.npy"])
        XCTAssertEqual(r.status, 1); XCTAssertTrue(r.err.contains("30x22") && r.err.contains("--crop or --resize"), r.err)
        r = try movq(["encode", d + "/odd.png", "-o", d + "/i.npy", "--crop", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try NPY.read(path: d + "/i.npy").shape, [1, 2, 5, 7])  // 28x20 / 4
        r = try movq(["encode", d + "/odd.png", "-o", d + "/j.npy", "--resize", "32x16", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try NPY.read(path: d + "/j.npy").shape, [1, 2, 4, 8])
    }

    // 7. Outputs people expect: per-image sample files, an inspect summary.
    func testSampleFilesAndInspectSummary() throws {
        let d = TestPaths.scratch()
        var r = try movq(["sample", "--class", "2", "--batch", "3", "--steps", "2", "--no-grid", "-o", d + "/img.png", "--tokens", d + "/t.npy"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: d).sorted(), ["img-0.png", "img-1.png", "img-2.png", "t.npy"])
        XCTAssertEqual(try PNG.read(path: d + "/img-2.png").width, 32)
        r = try movq(["inspect", TestPaths.demoModel])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("--tensors lists all 263 tensors"), r.out)
        XCTAssertFalse(r.out.contains("decoder.conv_in.weight"), r.out)
        XCTAssertLessThan(r.out.split(separator: "\n").count, 12)
    }
}
