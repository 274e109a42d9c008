import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// A damaged or hostile packed file gives a clear `MoVQError`, never a crash or a huge allocation.
final class PackedFileInputTests: XCTestCase {
    func testTruncatedPackedFile() throws {
        let (_, data) = try packedModelFile()
        for cut in [0, 5, 20, 100, data.count / 2, data.count - 1] {
            let p = write(data.prefix(cut))
            assertThrows(cut < 8 ? "truncated" : "") { try MoVQModel(contentsOf: p) }
        }
        assertThrows("lies outside the file") { try MoVQModel(contentsOf: write(data.prefix(data.count - 1))) }
    }

    func testCorruptedTensorBytesFailChecksum() throws {
        var (_, data) = try packedModelFile()
        data[data.count - 10] ^= 0xFF
        let path = write(data)
        assertThrows("checksum mismatch in tensor 'decoder.conv_out.") { try MoVQModel(contentsOf: path) }
        // Opening defers tensor checksums to each tensor's first read; `verifyAllChecksums` checks them all.
        let file = try PackedFile(path: path)
        assertThrows("checksum mismatch in tensor 'decoder.conv_out.") { try file.verifyAllChecksums() }
        let bad = try XCTUnwrap(file.header.tensors.last { $0.offset <= data.count - 10 })
        assertThrows("checksum mismatch in tensor '\(bad.name)'") { try file.floatArray(bad.name, shape: bad.shape) }
        XCTAssertNoThrow(try PackedFile(path: path, verifyChecksums: false).floatArray(bad.name, shape: bad.shape))
    }

    func testCorruptedHeader() throws {
        var (_, data) = try packedModelFile()
        data[40] ^= 0x01
        assertThrows("header checksum mismatch") { try PackedFile(path: write(data)) }
        var bad = try packedModelFile().data
        bad[0] = 0x4E
        assertThrows("bad magic") { try PackedFile(path: write(bad)) }
    }

    func testAbsurdHeaderLength() throws {
        var data = try packedModelFile().data
        data.replaceSubrange(16..<24, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        assertThrows("header length") { try PackedFile(path: write(data)) }
    }

    func testMissingFile() {
        assertThrows("no such file") { try MoVQModel(contentsOf: "/nonexistent/model.mvq") }
        assertThrows("no such file") { try CheckpointImporter.load(path: "/nonexistent/x.ckpt") }
    }

    // 6. A 2^62-element tensor whose byte count overflows.
    func testPackedTensorByteCountCannotOverflow() throws {
        let p = try editedFirstTensor { t in t["shape"] = [1 << 30, 1 << 30, 4]; t["bytes"] = 0; t["layout"] = "plain" }
        assertThrows("more than the") { try PackedFile(path: p) }
        // The same in a kernel layout, and a kernel layout on a shape it does not apply to.
        assertThrows("more than the") { try PackedFile(path: try self.editedFirstTensor { t in t["shape"] = [1 << 30, 1 << 30, 3, 3]; t["layout"] = "winograd6" }) }
        assertThrows("which layout winograd6 does not apply to") { try PackedFile(path: try self.editedFirstTensor { t in t["shape"] = [8, 8, 1, 1]; t["layout"] = "winograd6" }) }
        assertThrows("holds f32 values only") { try PackedFile(path: try self.editedFirstTensor { t in t["dtype"] = "f16"; t["layout"] = "planar6" }) }
        // The editor itself keeps files valid.
        XCTAssertNoThrow(try PackedFile(path: try editedFirstTensor { _ in }))
    }

    // 7. Unknown layouts, undefined dtypes and a wrong format field.
    func testPackedLayoutDTypeAndFormatAreChecked() throws {
        assertThrows("layout 'nchw16'") { try PackedFile(path: try self.editedFirstTensor { $0["layout"] = "nchw16" }) }
        for dt in ["f64", "bf16", "u8", "i32", "i64", "bool"] {
            assertThrows("has dtype \(dt)") { try PackedFile(path: try self.editedFirstTensor { $0["dtype"] = dt }) }
        }
        // i16 is the int16 layouts' type only, and they hold nothing else.
        assertThrows("has layout planar6, which holds f32 values only") { try PackedFile(path: try self.editedFirstTensor { $0["dtype"] = "i16" }) }
        assertThrows("has dtype i16, which only the int16 layouts hold") {
            try PackedFile(path: try self.editedFirstTensor { $0["dtype"] = "i16"; $0["layout"] = "plain" })
        }
        assertThrows("has layout winograd6-int16, which holds i16 values only") {
            try PackedFile(path: try self.editedFirstTensor { $0["layout"] = "winograd6-int16"; $0["shape"] = [8, 8, 3, 3] })
        }
        assertThrows("int16 tensor 'encoder.conv_in.weight' lacks an f32 scale tensor") {
            try PackedFile(path: try self.editedFirstTensor { t in
                let shape = t["shape"] as! [Int]
                let groups: Int = (shape[0] + 5) / 6, pairs: Int = (shape[1] + 1) / 2
                t["dtype"] = "i16"; t["layout"] = "winograd6-int16"; t["bytes"] = 16 * groups * 6 * pairs * 2 * 2
            })
        }
        // The s8 layouts hold i8 values, with a [2][points * ceil(O/6) * 6] tensor of scales and row sums.
        assertThrows("has layout winograd6-s8, which holds i8 values only") {
            try PackedFile(path: try self.editedFirstTensor { $0["layout"] = "winograd6-s8"; $0["shape"] = [8, 8, 3, 3] })
        }
        assertThrows("int8 tensor 'encoder.conv_in.weight' lacks an f32 scale tensor of shape [2, ") {
            try PackedFile(path: try self.editedFirstTensor { t in
                let shape = t["shape"] as! [Int]
                let groups: Int = (shape[0] + 5) / 6, quads: Int = (shape[1] + 3) / 4
                t["dtype"] = "i8"; t["layout"] = "winograd6-s8"; t["bytes"] = 16 * groups * 6 * quads * 4
            })
        }
        let d = try Crafted.editPacked(try packedModel()) { $0["format"] = "other-format" }
        assertThrows("format 'other-format'") { try PackedFile(path: write(d, "f.mvq")) }
        let dup = try Crafted.editPacked(try packedModel()) { h in
            var ts = h["tensors"] as! [[String: Any]]; ts[1]["name"] = ts[0]["name"]; h["tensors"] = ts
        }
        assertThrows("duplicate tensor") { try PackedFile(path: write(dup, "d.mvq")) }
    }

    // 12. FIFOs (and folders) as model, checkpoint or config paths fail at once.
    func testFIFOsDoNotBlock() throws {
        let fifo = TestPaths.scratch() + "/model.mvq"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertThrows("not a regular file") { try PackedFile(path: fifo) }
        assertThrows("not a regular file") { try MoVQModel(contentsOf: fifo) }
        assertThrows("not a regular file") { try CheckpointImporter.load(path: fifo) }
        assertThrows("not a regular file") { try CheckpointImporter.load(path: TestPaths.fixture("tiny_vqgan/diffusers"), configPath: fifo) }
        assertThrows("not a regular file") { try NPY.read(path: fifo) }
        assertThrows("not a regular file") { try PNG.read(path: fifo) }
        assertThrows("is a folder") { try PackedFile(path: TestPaths.scratch()) }
    }
}
