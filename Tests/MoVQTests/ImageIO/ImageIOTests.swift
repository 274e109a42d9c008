import XCTest
@testable import MoVQ
@testable import MoVQIO

final class ImageIOTests: XCTestCase {
    func testPNGRoundTrip() throws {
        for ch in [1, 3, 4] {
            let px = (0..<(7 * 5 * ch)).map { UInt8(($0 * 37) % 256) }
            let img = Image8(width: 7, height: 5, channels: ch, pixels: px)
            XCTAssertEqual(try PNG.decode([UInt8](PNG.encode(img))), img)
        }
        // Larger than one stored deflate block.
        let big = Image8(width: 300, height: 300, channels: 3, pixels: (0..<270_000).map { UInt8($0 % 251) })
        XCTAssertEqual(try PNG.decode([UInt8](PNG.encode(big))), big)
    }

    func testReadsCompressedPNGsFromOtherEncoders() throws {
        // The demo images were written by Pillow (dynamic Huffman, filters).
        let paths = TestPaths.demoImages
        XCTAssertEqual(paths.count, 10)
        for p in paths {
            let img = try PNG.read(path: p)
            XCTAssertEqual(img.width, 32)
            XCTAssertEqual(img.height, 32)
            XCTAssertEqual(img.channels, 1)
            XCTAssertGreaterThan(Set(img.pixels).count, 10)
        }
    }

    func testInflateFixedHuffmanAndBackReferences() throws {
        // zlib.compress(b"abcabcabcabcabcabc hello hello", 9) from CPython.
        let z: [UInt8] = [0x78, 0xda, 0x4b, 0x4c, 0x4a, 0x4e, 0x44, 0x45, 0x0a, 0x19, 0xa9, 0x39, 0x39, 0xf9, 0x10, 0x12, 0x00, 0xaf, 0x3e, 0x0b, 0x4d]
        XCTAssertEqual(String(decoding: try Inflate.zlib(z, limit: 1000), as: UTF8.self), "abcabcabcabcabcabc hello hello")
        XCTAssertThrowsError(try Inflate.zlib(z, limit: 10))
        XCTAssertThrowsError(try Inflate.zlib(Array(z.prefix(10)), limit: 1000))
    }

    func testNPYRoundTrip() throws {
        let d = TestPaths.scratch()
        try writeFileAtomically(d + "/f.npy", NPY.encode(shape: [2, 1, 3], float32: [1, -2, 3.5, 4, 5, 6]))
        let f = try NPY.read(path: d + "/f.npy")
        XCTAssertEqual(f.shape, [2, 1, 3]); XCTAssertEqual(f.dtype, .f32); XCTAssertEqual(f.values, [1, -2, 3.5, 4, 5, 6])
        try writeFileAtomically(d + "/i.npy", NPY.encode(shape: [4], int64: [0, 16383, -1, 7]))
        let i = try NPY.read(path: d + "/i.npy")
        XCTAssertEqual(i.shape, [4]); XCTAssertEqual(i.dtype, .i64); XCTAssertEqual(i.values, [0, 16383, -1, 7])
    }

    func testImageConversionRoundsLikeTheReference() throws {
        let t = try Tensor(shape: [1, 3, 1, 2], data: [-1, 1, -2, 2, 0, 0.5])
        let img = ImageConversion.images(from: t)[0]
        XCTAssertEqual(img.pixels, [0, 0, 128, 255, 255, 191])
        XCTAssertEqual(ImageConversion.psnr(img, img), .infinity)
    }
}
