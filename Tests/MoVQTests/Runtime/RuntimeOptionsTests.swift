import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The environment's tuning switches, parsed in one place.
final class RuntimeOptionsTests: XCTestCase {
    func testEnvironmentParsing() {
        let d = RuntimeOptions(environment: [:])
        XCTAssertEqual([d.winograd, d.int16Winograd, d.quadLinears, d.byteWinograd], [true, true, true, true])
        XCTAssertNil(d.isa); XCTAssertEqual(d.minPositions, 256)
        let o = RuntimeOptions(environment: ["MOVQ_ISA": "avx2", "MOVQ_WINOGRAD": "0", "MOVQ_INT16": "0", "MOVQ_QUAD": "0", "MOVQ_U8S8": "0",
                                             "MOVQ_POSITIONS": "128", "MOVQ_L2": "bogus"])
        XCTAssertEqual(o.isa, "avx2")
        XCTAssertEqual([o.winograd, o.int16Winograd, o.quadLinears, o.byteWinograd], [false, false, false, false])
        XCTAssertEqual(o.minPositions, 128); XCTAssertEqual(o.l2Budget, d.l2Budget)
        XCTAssertTrue(o.description.contains("winograd=off"), o.description)
    }
}
