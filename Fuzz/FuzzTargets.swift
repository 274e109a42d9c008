// libFuzzer entry point for the MoVQIO parsers. Fuzz/run.sh compiles this
// file together with Sources/MoVQIO (one module, so internal parsers are
// reachable) with -sanitize=fuzzer,address; MOVQ_FUZZ_TARGET picks the
// parser. Every input must end in a value or a thrown MoVQError: a crash,
// a sanitizer report, a leak or a timeout is a finding.
import Foundation
import MoVQKernelCore

/// The parsers under test, by name.
let fuzzTargets: [String: (UnsafeRawBufferPointer) throws -> Void] = [
    // The .mvq reader: header, tensor table, checksums, int8 scales, and
    // each layout both as plain values and as a kernel reads it.
    "packed": { bytes in
        let file = try PackedFile(path: try scratchFile(bytes))
        for e in file.header.tensors.prefix(4) {
            _ = try? file.floatArray(e.name, shape: e.shape)
            for kernel in [TensorLayout.planar6, .winograd6, .winograd6Upsample] {
                _ = try? file.withWeights(e.name, shape: e.shape, kernelLayout: kernel) { w -> Int in
                    switch w {
                    case .packedInt16(let words, _, _, _): return Int(WinogradInt16Weights.largestMagnitude(words))
                    case .packedS8(let words, let scales, _, _): return Int(words.last ?? 0) &+ Int(scales.last ?? 0)  // what a kernel reads first
                    default: return 0
                    }
                }
            }
        }
    },
    // safetensors header (strict JSON) and tensor ranges.
    "safetensors": { bytes in _ = try Safetensors.parse(bytes, path: "<fuzz>") },
    // torch zip archive + restricted unpickler + strided tensor gather.
    "torch": { bytes in _ = try TorchCheckpoint.read(path: try scratchFile(bytes)) },
    // The unpickler alone (no zip framing), so mutations reach opcodes directly.
    "pickle": { bytes in
        var u = RestrictedUnpickler(bytes, path: "<fuzz>")
        _ = try u.run()
    },
    "npy": { bytes in _ = try NPY.parse(bytes, path: "<fuzz>") },
    // flax msgpack checkpoints: the msgpack reader, ndarray extensions, and the
    // mapping of the official MaskGIT trees onto our architectures.
    "flax": { bytes in
        guard FlaxCheckpoint.looksLike(bytes) else { _ = try MessagePack.parse(bytes, path: "<fuzz>"); return }
        _ = try FlaxImporter.load(try scratchFile(bytes), configPath: nil)
    },
    "png": { bytes in _ = try PNG.decode(Array(bytes), path: "<fuzz>", maxPixels: 1 << 22) },
    // The writer: whatever it compresses must inflate back to the same bytes.
    "deflate": { bytes in
        let data = Array(bytes)
        for filtered in [false, true] {
            guard (try? Inflate.zlib(Deflate.zlib(data, filtered: filtered), limit: data.count)) == data else {
                fatalError("deflate round trip failed for \(data.count) bytes (filtered \(filtered))")
            }
        }
    },
    "inflate": { bytes in
        do { _ = try Inflate.zlib(Array(bytes), limit: 1 << 22) } catch let e as Inflate.Failure {
            throw MoVQError.corruptFile(path: "<fuzz>", reason: "\(e)")  // PNG wraps it the same way
        }
    },
]

nonisolated(unsafe) var selectedTarget: ((UnsafeRawBufferPointer) throws -> Void)? = nil
nonisolated(unsafe) var scratchPath = ""

/// Writes the input to this process's scratch file (for path-based readers).
func scratchFile(_ bytes: UnsafeRawBufferPointer) throws -> String {
    try Data(bytes).write(to: URL(fileURLWithPath: scratchPath))
    return scratchPath
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> Int32 {
    let name = ProcessInfo.processInfo.environment["MOVQ_FUZZ_TARGET"] ?? ""
    guard let t = fuzzTargets[name] else {
        FileHandle.standardError.write(Data("set MOVQ_FUZZ_TARGET to one of: \(fuzzTargets.keys.sorted().joined(separator: ", "))\n".utf8))
        exit(2)
    }
    selectedTarget = t
    let dir = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    scratchPath = "\(dir)/movq-fuzz-\(name)-\(getpid())"
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    do { try selectedTarget!(bytes) } catch is MoVQError {} catch {
        fatalError("a parser threw a non-MoVQError: \(error)")
    }
    return 0
}
