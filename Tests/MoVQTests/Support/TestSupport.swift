import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Paths of committed fixtures and scratch files for tests.
enum TestPaths {
    /// Tests/MoVQTests (this file is in its Support folder).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    static func fixture(_ p: String) -> String { root.appendingPathComponent("Fixtures").appendingPathComponent(p).path }
    static let packageRoot = root.deletingLastPathComponent().deletingLastPathComponent()
    static var demoModel: String { packageRoot.appendingPathComponent("Sources/MoVQDemo/Resources/demo.mvq").path }
    static var demoImages: [String] {
        let d = packageRoot.appendingPathComponent("Sources/MoVQDemo/Resources/demo_images")
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

/// Runs the built `movq` executable (tests of the CLI run the real binary).
enum CLI {
    /// The binary next to the test bundle.
    static var binary: String {
        let bundle = Bundle(for: CLITests.self).bundleURL
        let candidates = [bundle.appendingPathComponent("movq"), bundle.deletingLastPathComponent().appendingPathComponent("movq")]
        return (candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]).path
    }

    /// Exit status, stdout and stderr of `movq args` (stdin closed, extra `environment` merged).
    @discardableResult
    static func run(_ args: [String], binary: String? = nil, environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary ?? self.binary)
        p.arguments = args
        if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let o = Pipe(), e = Pipe()
        p.standardOutput = o; p.standardError = e
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Read both pipes at once so a chatty child cannot block on a full pipe.
        final class Collected: @unchecked Sendable { var data = Data() }
        let err = Collected(), done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async { err.data = e.fileHandleForReading.readDataToEndOfFile(); done.signal() }
        let out = o.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err.data, as: UTF8.self))
    }
}
