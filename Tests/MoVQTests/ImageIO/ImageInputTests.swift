import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Bad PNG, NPY and zip details give a clear `MoVQError` before any large allocation.
final class ImageInputTests: XCTestCase {
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

    // 1. PNG IHDR whose width * height wraps.
    func testPNGSizeProductCannotWrap() {
        let idat = Crafted.chunk("IDAT", [0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0, 0, 0, 1])
        let huge = Crafted.png([Crafted.ihdr(width: 3_631_363_752, height: 3_809_879_428, colorType: 6), idat, Crafted.chunk("IEND", [])])
        XCTAssertLessThan(huge.count, 70)
        assertThrows("is invalid") { try PNG.decode(huge) }
        let big = Crafted.png([Crafted.ihdr(width: (1 << 31) - 1, height: (1 << 31) - 1, colorType: 6), idat, Crafted.chunk("IEND", [])])
        assertThrows("pixels this reader accepts") { try PNG.decode(big) }
    }

    // Also accepted though wrong, before.
    func testBadZipPNGAndNPYDetails() throws {
        // PNG: bad Adler-32, methods != 0, IDAT before IHDR.
        let good = [UInt8](PNG.encode(Image8(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])))
        XCTAssertEqual(try PNG.decode(good).pixels, [1, 2, 3, 4, 5, 6])
        // Rebuild the IDAT with a wrong Adler-32 (the chunk CRC stays right).
        let zlib = Crafted.zlibStored([0, 1, 2, 3, 0, 4, 5, 6])
        var badAdler = zlib; badAdler[badAdler.count - 1] ^= 1
        let withAdler = { (z: [UInt8]) in Crafted.png([Crafted.ihdr(width: 3, height: 2), Crafted.chunk("IDAT", z), Crafted.chunk("IEND", [])]) }
        XCTAssertEqual(try PNG.decode(withAdler(zlib)).pixels, [1, 2, 3, 4, 5, 6])
        assertThrows("Adler-32") { try PNG.decode(withAdler(badAdler)) }
        let rest = [Crafted.chunk("IDAT", zlib), Crafted.chunk("IEND", [])]
        assertThrows("compression method 1") { try PNG.decode(Crafted.png([Crafted.ihdr(width: 3, height: 2, compression: 1)] + rest)) }
        assertThrows("filter method 2") { try PNG.decode(Crafted.png([Crafted.ihdr(width: 3, height: 2, filter: 2)] + rest)) }
        assertThrows("first chunk is not") { try PNG.decode(Crafted.png([Crafted.chunk("IDAT", zlib), Crafted.ihdr(width: 3, height: 2), Crafted.chunk("IEND", [])])) }
        assertThrows("not consecutive") {
            try PNG.decode(Crafted.png([Crafted.ihdr(width: 3, height: 2), Crafted.chunk("IDAT", Array(zlib[0..<4])), Crafted.chunk("tEXt", [65, 0, 66]),
                                        Crafted.chunk("IDAT", Array(zlib[4...])), Crafted.chunk("IEND", [])]))
        }

        // npy: Fortran order however spelled, unknown versions, bool index maps.
        func npy(_ header: String, major: UInt8 = 1, minor: UInt8 = 0, body: [UInt8]) -> Data {
            var h = Array(header.utf8)
            while (10 + h.count + 1) % 64 != 0 { h.append(0x20) }
            h.append(0x0A)
            var d = Data([0x93] + Array("NUMPY".utf8) + [major, minor])
            d.appendLE(UInt16(h.count)); d.append(contentsOf: h); d.append(contentsOf: body)
            return d
        }
        let four = [UInt8](repeating: 0, count: 16)
        for h in ["{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", "{'descr':'<f4','fortran_order' : True,'shape':(2,2)}",
                  "{'fortran_order': True, 'descr': '<f4', 'shape': (2, 2)}"] {
            assertThrows("Fortran-ordered") { try NPY.read(path: self.write(npy(h, body: four), "f.npy")) }
        }
        XCTAssertEqual(try NPY.read(path: write(npy("{'descr':'<f4','fortran_order':False,'shape':(2,2)}", body: four), "ok.npy")).shape, [2, 2])
        for (major, minor) in [(4, 0), (1, 5), (0, 1)] {
            assertThrows("format version") { try NPY.read(path: self.write(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", major: UInt8(major), minor: UInt8(minor), body: four), "v.npy")) }
        }
        assertThrows("repeats key") { try NPY.read(path: self.write(npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", body: four), "r.npy")) }
        assertThrows("'>f4'") { try NPY.read(path: self.write(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", body: four), "b.npy")) }
        let bools = NPY.encode(shape: [1, 2, 2], descr: "|b1", body: Data([1, 0, 1, 1]))
        XCTAssertEqual(try NPY.read(path: write(bools, "bool.npy")).dtype, .bool)

        // safetensors: overlapping ranges, duplicate keys, holes.
        func st(_ header: String, _ body: Int) -> Data {
            var d = Data(); d.appendLE(UInt64(header.utf8.count)); d.append(Data(header.utf8)); d.append(Data(count: body)); return d
        }
        assertThrows("overlaps") {
            try Safetensors.read(path: self.write(st(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12), "o.safetensors"))
        }
        assertThrows("duplicate key 'a'") {
            try Safetensors.read(path: self.write(st(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8), "k.safetensors"))
        }
        assertThrows("hole") {
            try Safetensors.read(path: self.write(st(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8), "h.safetensors"))
        }
        XCTAssertEqual(try Safetensors.read(path: write(st(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"x":"y"}}"#, 8), "g.safetensors")).count, 1)
    }
}
