import Foundation
import MoVQ

/// The demo model, prior and images that ship with `movq` and `movq-server`:
/// SwiftPM copies them into `MoVQ_MoVQDemo.resources` next to the binaries. They are looked up
/// there (following symlinks to the binary), in `MOVQ_DEMO_DIR`, and in
/// `../share/movq` beside the binary (an installed layout); never through
/// `Bundle.module`, which aborts the process when the folder is missing.
public enum DemoAssets {
    /// The resource folder SwiftPM writes next to the binaries.
    public static let folderName = "MoVQ_MoVQDemo.resources"

    /// Folders searched, in order.
    public static var searchPath: [String] {
        var dirs: [String] = []
        if let d = ProcessInfo.processInfo.environment["MOVQ_DEMO_DIR"], !d.isEmpty { dirs.append(d) }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let candidates = [exe] + (Bundle.main.executableURL.map { [$0.resolvingSymlinksInPath()] } ?? [])
        for e in candidates {
            let bin = e.deletingLastPathComponent()
            dirs.append(bin.appendingPathComponent(folderName).path)
            dirs.append(bin.deletingLastPathComponent().appendingPathComponent("share/movq").path)
        }
        var seen = Set<String>()
        return dirs.filter { seen.insert($0).inserted }
    }

    /// The first `name` found on the search path, or an error that says where it looked.
    public static func find(_ name: String, what: String) throws -> String {
        let dirs = searchPath
        for d in dirs {
            let p = URL(fileURLWithPath: d).appendingPathComponent(name).path
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        throw MoVQError.io(path: name, reason: "the \(what) that ships with movq was not found (looked in \(dirs.joined(separator: ", "))); "
            + "give a model path, or keep \(folderName) next to the binary (see README, Installing)")
    }

    /// The demo MoVQ.
    public static func model() throws -> String { try find("demo.mvq", what: "demo model") }
    /// The demo MaskGIT prior.
    public static func prior() throws -> String { try find("demo-prior.mvq", what: "demo prior") }
    /// The demo images (PNG paths, sorted).
    public static func images() throws -> [String] {
        let d = URL(fileURLWithPath: try find("demo_images", what: "demo images"))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: d.path)) ?? []
        return names.filter { $0.hasSuffix(".png") }.sorted().map { d.appendingPathComponent($0).path }
    }

    /// Splits positional paths into an optional model (`*.mvq`) and the rest;
    /// without a model, the demo model is used.
    public static func modelAndInputs(_ paths: [String]) throws -> (model: String, inputs: [String]) {
        if let first = paths.first, first.hasSuffix(".mvq") { return (first, Array(paths.dropFirst())) }
        return (try model(), paths)
    }
}

