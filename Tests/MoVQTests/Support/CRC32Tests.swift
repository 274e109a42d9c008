import XCTest
@testable import MoVQIO

final class CRC32Tests: XCTestCase {
    /// The bit-at-a-time definition the sliced tables are derived from.
    private func bitwise(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return ~c
    }

    func testCheckValueAndEveryTailLength() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)  // the standard check value
        XCTAssertEqual(CRC32.checksum([]), 0)
        var rng = SystemRandomNumberGenerator()
        for n in Array(0...40) + [63, 64, 65, 79, 80, 127, 128, 129, 1000, 4099, 65536 + 37] {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(CRC32.checksum(bytes), bitwise(bytes), "length \(n)")
            // Continuing over a split gives the CRC of the whole, and unaligned starts read correctly.
            let cut = n / 3
            let split = bytes.withUnsafeBytes { CRC32.update(CRC32.update(0, UnsafeRawBufferPointer(rebasing: $0[0..<cut])), UnsafeRawBufferPointer(rebasing: $0[cut...])) }
            XCTAssertEqual(split, bitwise(bytes), "length \(n) split at \(cut)")
            // The table-driven loop alone (what CPUs without carry-less multiplication run) agrees too.
            XCTAssertEqual(bytes.withUnsafeBytes { ~CRC32.sliced(~0, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, n) }, bitwise(bytes), "length \(n) sliced")
        }
        print("CRC32 folding \(CRC32.folding ? "on" : "off") on this CPU")
    }
}
