import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The compressed PNG writer (issue 11, item 4): everything it writes reads
/// back exactly, and the demo outputs are no larger than a zlib level-6 writer's.
final class PNGWriterTests: XCTestCase {
    func testDeflateRoundTripsEveryKindOfData() throws {
        var rng = SeededGenerator(seed: 5)
        let cases: [[UInt8]] = [
            [], [7], [1, 2], Array(repeating: 0, count: 100_000),                      // empty, tiny, one long run
            (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &rng) },           // incompressible: several blocks
            (0..<50_000).map { UInt8(($0 * 7 + $0 / 300) % 251) },                       // periodic with drift
            Array("the quick brown fox jumps over the lazy dog ".utf8).flatMap { Array(repeating: $0, count: 3) } + Array(repeating: 9, count: 258 * 3 + 1),
        ]
        for data in cases {
            for filtered in [false, true] {
                let z = Deflate.zlib(data, filtered: filtered)
                XCTAssertEqual(try Inflate.zlib(z, limit: data.count), data, "\(data.count) bytes, filtered \(filtered)")
            }
        }
        XCTAssertLessThan(Deflate.zlib(cases[3]).count, 200)
    }

    func testPNGRoundTripsOddSizesAndEveryChannelCount() throws {
        var rng = SeededGenerator(seed: 9)
        for (w, h) in [(1, 1), (3, 2), (17, 5), (64, 33), (255, 3)] {
            for c in [1, 3, 4] {
                // Smooth content (filters matter) plus noise.
                let px = (0..<(w * h * c)).map { i -> UInt8 in UInt8(truncatingIfNeeded: (i / c % w) * 3 + (i / c / w) * 5 + Int(UInt8.random(in: 0...3, using: &rng))) }
                let img = Image8(width: w, height: h, channels: c, pixels: px)
                let png = [UInt8](PNG.encode(img))
                XCTAssertEqual(try PNG.decode(png), img, "\(w)x\(h)x\(c)")
            }
        }
    }

    func testFiltersPickTheSmallestRowCost() {
        // A horizontal ramp: Sub (1) leaves constant rows; a vertical ramp: Up (2).
        let ramp = Image8(width: 50, height: 4, channels: 1, pixels: (0..<200).map { UInt8($0 % 50 * 5) })
        let rows = PNG.filtered(ramp)
        XCTAssertEqual((0..<4).map { rows[$0 * 51] }, [1, 2, 2, 2])
    }

    func testDemoOutputsAreSmallerThanZlibLevel6() throws {
        let reference = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("png_reference_sizes.json")))) as! [String: [String: Int]]
        let d = TestPaths.scratch()
        var r = try CLI.run(["sample", "-o", d + "/samples.png", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        r = try CLI.run(["reconstruct", "-o", d + "/reconstruction.png", "-q"])
        XCTAssertEqual(r.status, 0, r.err)
        for (name, ref) in reference {
            let path = d + "/" + name
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            let img = try PNG.read(path: path)
            XCTAssertEqual([img.width, img.height], [ref["width"]!, ref["height"]!], name)
            XCTAssertLessThanOrEqual(size, ref["zlib6_bytes"]!, "\(name): \(size) bytes, zlib level 6 writes \(ref["zlib6_bytes"]!)")
            XCTAssertLessThan(size, img.width * img.height * img.channels / 2, "\(name) is compressed")
        }
    }
}
