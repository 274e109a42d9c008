import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Paths of committed fixtures and scratch files for tests.
enum TestPaths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static func fixture(_ p: String) -> String { root.appendingPathComponent("Fixtures").appendingPathComponent(p).path }
    static let packageRoot = root.deletingLastPathComponent().deletingLastPathComponent()
    static var demoModel: String { packageRoot.appendingPathComponent("Sources/movq/Resources/demo.mvq").path }
    static var demoImages: [String] {
        let d = packageRoot.appendingPathComponent("Sources/movq/Resources/demo_images")
        return ((try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? []).filter { $0.hasSuffix(".png") }.sorted().map { d.appendingPathComponent($0).path }
    }

    /// A fresh empty folder for one test.
    static func scratch() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("movq-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d.path
    }
}

func loadTensor(_ path: String) throws -> Tensor {
    let a = try NPY.read(path: path)
    return try Tensor(shape: a.shape, data: a.values.map { Float($0) })
}

func loadIndices(_ path: String) throws -> IndexMap {
    let a = try NPY.read(path: path)
    return try IndexMap(shape: a.shape, values: a.values.map { Int32($0) })
}

/// Max |a - b|, and max |b| as the output scale.
func maxAbsError(_ a: Tensor, _ b: Tensor) -> (error: Float, scale: Float) {
    precondition(a.shape == b.shape, "shapes \(a.shape) vs \(b.shape)")
    var e: Float = 0, s: Float = 0
    for i in a.data.indices { e = max(e, abs(a.data[i] - b.data[i])); s = max(s, abs(b.data[i])) }
    return (e, s)
}

/// Asserts fp32 parity: max abs error within 1e-4 of the reference's scale.
func assertParity(_ got: Tensor, _ want: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.shape, want.shape, what, file: file, line: line)
    guard got.shape == want.shape else { return }
    let (e, s) = maxAbsError(got, want)
    XCTAssertLessThanOrEqual(e, 1e-4 * max(s, 1), "\(what): max abs error \(e) at scale \(s)", file: file, line: line)
}

/// Asserts that `body` throws a `MoVQError` whose description contains `text`.
func assertThrows<T>(_ text: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected an error containing '\(text)'", file: file, line: line)
    } catch let e as MoVQError {
        XCTAssertTrue(text.isEmpty || e.description.contains(text), "error '\(e.description)' does not mention '\(text)'", file: file, line: line)
    } catch {
        XCTFail("unexpected error type \(error)", file: file, line: line)
    }
}
