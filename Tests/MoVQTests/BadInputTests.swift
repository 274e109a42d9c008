import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Every kind of bad input gives a clear MoVQError, never a crash.
final class BadInputTests: XCTestCase {
    func packedModel() throws -> (path: String, data: Data) {
        let p = TestPaths.scratch() + "/m.mvq"
        try Converter.convert(source: TestPaths.fixture("tiny_vqgan/diffusers"), output: p)
        return (p, try Data(contentsOf: URL(fileURLWithPath: p)))
    }

    func write(_ d: Data, _ name: String = "x.mvq") -> String {
        let p = TestPaths.scratch() + "/" + name
        try! d.write(to: URL(fileURLWithPath: p))
        return p
    }

    func testTruncatedPackedFile() throws {
        let (_, data) = try packedModel()
        for cut in [0, 5, 20, 100, data.count / 2, data.count - 1] {
            let p = write(data.prefix(cut))
            assertThrows(cut < 8 ? "truncated" : "") { try MoVQModel(contentsOf: p) }
        }
        assertThrows("lies outside the file") { try MoVQModel(contentsOf: write(data.prefix(data.count - 1))) }
    }

    func testCorruptedTensorBytesFailChecksum() throws {
        var (_, data) = try packedModel()
        data[data.count - 10] ^= 0xFF
        assertThrows("checksum mismatch in tensor 'decoder.conv_out.") { try MoVQModel(contentsOf: write(data)) }
    }

    func testCorruptedHeader() throws {
        var (_, data) = try packedModel()
        data[40] ^= 0x01
        assertThrows("header checksum mismatch") { try PackedFile(path: write(data)) }
        var bad = try packedModel().data
        bad[0] = 0x4E
        assertThrows("bad magic") { try PackedFile(path: write(bad)) }
    }

    func testAbsurdHeaderLength() throws {
        var data = try packedModel().data
        data.replaceSubrange(16..<24, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        assertThrows("header length") { try PackedFile(path: write(data)) }
    }

    func testMissingFile() {
        assertThrows("no such file") { try MoVQModel(contentsOf: "/nonexistent/model.mvq") }
        assertThrows("no such file") { try CheckpointImporter.load(path: "/nonexistent/x.ckpt") }
    }

    func testHostilePickleIsRefused() {
        assertThrows("global 'posix.system' is not allowed") { try CheckpointImporter.load(path: TestPaths.fixture("bad/hostile.ckpt")) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/movq_pwned"))
        assertThrows("pre-1.6, non-zip") { try CheckpointImporter.load(path: TestPaths.fixture("bad/legacy.pt")) }
    }

    func testTruncatedCheckpoints() throws {
        let ckpt = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("tiny_movq/original.ckpt")))
        for cut in [3, 100, ckpt.count / 2, ckpt.count - 30] {
            assertThrows("") { try CheckpointImporter.load(path: write(ckpt.prefix(cut), "t.ckpt")) }
        }
        let st = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("tiny_vqgan/diffusers/diffusion_pytorch_model.safetensors")))
        for cut in [0, 7, 50, st.count / 2, st.count - 1] {
            assertThrows("") { try CheckpointImporter.load(path: write(st.prefix(cut), "t.safetensors")) }
        }
    }

    /// Builds a safetensors file from float tensors.
    func safetensors(_ tensors: [(String, [Int], [Float])]) -> Data {
        var header: [String: Any] = [:]
        var body = Data()
        for (name, shape, values) in tensors {
            header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [body.count, body.count + values.count * 4]]
            for v in values { body.appendLE(v.bitPattern) }
        }
        let h = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var out = Data()
        out.appendLE(UInt64(h.count))
        return out + h + body
    }

    func fixtureTensors() throws -> [(String, [Int], [Float])] {
        try Safetensors.read(path: TestPaths.fixture("tiny_vqgan/diffusers/diffusion_pytorch_model.safetensors")).map { ($0.name, $0.shape, $0.values) }
    }

    func importEdited(_ edit: (inout [(String, [Int], [Float])]) -> Void) throws -> ImportedModel {
        var t = try fixtureTensors()
        edit(&t)
        let p = write(safetensors(t), "e.safetensors")
        return try CheckpointImporter.load(path: p, configPath: write(Data(#"{"norm_num_groups": 8}"#.utf8), "c.json"))
    }

    func testEditedCheckpoints() throws {
        XCTAssertNoThrow(try importEdited { _ in })
        assertThrows("missing tensor 'decoder.conv_in.bias'") { try importEdited { $0.removeAll { $0.0 == "decoder.conv_in.bias" } } }
        assertThrows("tensor 'decoder.conv_out.weight' has shape [3, 24, 3, 2]") {
            try importEdited { t in let i = t.firstIndex { $0.0 == "decoder.conv_out.weight" }!; t[i].1 = [3, 24, 3, 2]; t[i].2.removeLast(3 * 24 * 3) }
        }
        assertThrows("contains NaN") { try importEdited { t in let i = t.firstIndex { $0.0 == "encoder.conv_in.bias" }!; t[i].2[0] = .nan } }
        assertThrows("unknown checkpoint keys (1): decoder.extra.weight") { try importEdited { $0.append(("decoder.extra.weight", [2], [1, 2])) } }
        assertThrows("not divisible") {
            try CheckpointImporter.load(path: TestPaths.fixture("tiny_vqgan/diffusers"), configPath: write(Data(#"{"norm_num_groups": 7}"#.utf8), "c.json"))
        }
    }

    func testOlderDiffusersAttentionNames() throws {
        let renamed = try importEdited { t in
            for i in t.indices {
                for (new, old) in [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")] {
                    t[i].0 = t[i].0.replacingOccurrences(of: new, with: old)
                }
            }
        }
        let plain = try importEdited { _ in }
        XCTAssertEqual(renamed.config, plain.config)
        XCTAssertEqual(renamed.tensors.map(\.name), plain.tensors.map(\.name))
        XCTAssertEqual(renamed.tensors.map(\.values), plain.tensors.map(\.values))
    }

    func testWrongDTypeInSafetensors() throws {
        var h = Data(#"{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#.utf8)
        h.append(contentsOf: [UInt8](repeating: 0x20, count: 0))
        var d = Data(); d.appendLE(UInt64(h.count)); d.append(h); d.append(Data(count: 8))
        assertThrows("dtype I64") { try CheckpointImporter.load(path: write(d, "i.safetensors")) }
    }

    func testBadDecodeInputs() throws {
        let m = try MoVQModel(contentsOf: try packedModel().path)
        assertThrows("latent must be [B, 3, h, w]") { try m.decode(latent: Tensor(zeros: [1, 4, 2, 2])) }
        assertThrows("outside the codebook") { try m.decode(indices: IndexMap(shape: [1, 1, 2, 2], values: [0, 1, 19, 2])) }
        assertThrows("outside the codebook") { try m.decode(indices: IndexMap(shape: [1, 1, 1, 1], values: [-1])) }
        assertThrows("indices per position") { try m.decode(indices: IndexMap(shape: [1, 2, 1, 1], values: [0, 0])) }
        assertThrows("NaN") { try m.decode(latent: Tensor(shape: [1, 3, 1, 1], data: [0, .nan, 0])) }
        assertThrows("needs an estimated") { try m.checkDecodeMemory(batch: 1, latentHeight: 100_000, latentWidth: 100_000) }
        assertThrows("multiple of 2") { try m.encode(images: Tensor(zeros: [1, 3, 5, 4])) }
        assertThrows("images must be") { try m.encode(images: Tensor(zeros: [1, 1, 4, 4])) }
    }

    func testBadNPYAndPNG() throws {
        assertThrows("npy magic") { try NPY.read(path: write(Data("hello".utf8), "x.npy")) }
        var npy = NPY.encode(shape: [2, 3], float32: [1, 2, 3, 4, 5, 6])
        npy.removeLast(4)
        assertThrows("npy data is 20 bytes") { try NPY.read(path: write(npy, "y.npy")) }
        assertThrows("not a PNG") { try PNG.read(path: write(Data("GIF89a...".utf8), "x.png")) }
        var png = PNG.encode(Image8(width: 3, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 18)))
        png[png.count - 20] ^= 0xFF
        assertThrows("CRC") { try PNG.read(path: write(png, "c.png")) }
        let good = PNG.encode(Image8(width: 3, height: 2, channels: 3, pixels: [UInt8](repeating: 9, count: 18)))
        assertThrows("") { try PNG.read(path: write(good.prefix(good.count - 12), "t.png")) }
    }
}

