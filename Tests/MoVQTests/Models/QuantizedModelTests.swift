import XCTest
@testable import MoVQ
@testable import MoVQIO

/// int8 and fp16 packed models: weight quantization, file format, decoding
/// accuracy against the fp32 model, and the comparison metrics.
final class QuantizedModelTests: XCTestCase {
    func testInt8WeightsRoundTripWithinHalfAScale() {
        var rng = SeededGenerator(seed: 7)
        let rows = 5, per = 37
        var w = (0..<(rows * per)).map { _ in Float.random(in: -3...3, using: &rng) }
        for i in 0..<per { w[2 * per + i] = 0 }  // an all-zero channel
        w[4 * per] = -1e-3  // a tiny channel: its own scale keeps it exact-ish
        for i in 1..<per { w[4 * per + i] = 1e-3 }
        let (q, scales) = Int8Weights.quantize(w, outChannels: rows)
        XCTAssertEqual(scales[2], 0)
        for o in 0..<rows {
            let maxAbs = w[(o * per)..<((o + 1) * per)].map { abs($0) }.max()!
            XCTAssertEqual(scales[o], maxAbs / 127, accuracy: 1e-9)
            XCTAssertEqual(q[(o * per)..<((o + 1) * per)].map { abs(Int($0)) }.max()!, maxAbs > 0 ? 127 : 0)
            for i in (o * per)..<((o + 1) * per) {
                XCTAssertLessThanOrEqual(abs(Float(q[i]) * scales[o] - w[i]), scales[o] / 2 + 1e-7)
            }
        }
    }

    func testInt8FileStoresScalesAndDecodesCloseToFP32() throws {
        let d = TestPaths.scratch()
        for (name, source) in [("tiny_movq", "tiny_movq/diffusers"), ("tiny_multichannel", "tiny_multichannel/original.ckpt")] {
            try Converter.convert(source: TestPaths.fixture(source), output: d + "/\(name)-q.mvq", precision: .int8)
            try Converter.convert(source: TestPaths.fixture(source), output: d + "/\(name)-f.mvq")
            let q = try MoVQModel(contentsOf: d + "/\(name)-q.mvq"), f = try MoVQModel(contentsOf: d + "/\(name)-f.mvq")
            XCTAssertEqual(q.weightPrecision, .int8)
            XCTAssertEqual(f.weightPrecision, .fp32)
            // Every big weight but the SCN modulation and conv_out is int8, with an f32 scale per output channel.
            let entries = q.file.header.tensors
            let int8 = entries.filter { $0.dtype == .i8 }
            XCTAssertFalse(int8.isEmpty)
            for e in int8 {
                XCTAssertFalse(e.name.contains(".conv_y.") || e.name.contains(".conv_b.") || e.name.hasPrefix("decoder.conv_out."), e.name)
                let s = try XCTUnwrap(q.file.entry(try XCTUnwrap(e.scales)))
                XCTAssertEqual(s.dtype, .f32); XCTAssertEqual(s.shape, TensorLayout(rawValue: e.layout)!.scaleShape(e.shape))
            }
            XCTAssertTrue(entries.contains { $0.name == "decoder.conv_out.weight" && $0.dtype == .f32 })
            XCTAssertLessThan(q.file.fileSize, f.file.fileSize * 6 / 10)
            // Decoding: close to fp32 (random tiny weights: a loose bound), identical across threads and tiers.
            let z = try loadTensor(TestPaths.fixture("\(name)/latent.npy"))
            let a = try f.decode(latent: z), b = try q.decode(latent: z, threads: 2)
            for i in 0..<z.shape[0] {
                let c = try ImageComparison.compare(b, a, image: i)
                XCTAssertGreaterThan(c.psnr, 30, "\(name) image \(i): \(c)")
                XCTAssertGreaterThan(c.ssim, 0.95, "\(name) image \(i): \(c)")
                XCTAssertGreaterThan(c.maxAbsError, 0, "int8 weights should change the output a little")
            }
            XCTAssertEqual(try q.decode(latent: z, threads: 1).data, b.data)
            // The SIMD path's byte-mode Winograd GEMMs add 8-bit rounding of transformed inputs and weights to the
            // reference's fp32 math on the int8 weights (the plain file: the s8 form does not invert).
            try Converter.convert(source: TestPaths.fixture(source), output: d + "/\(name)-qp.mvq", precision: .int8, layout: .plain)
            XCTAssertEqual(try MoVQModel(contentsOf: d + "/\(name)-qp.mvq").decode(latent: z, threads: 2), b, "\(name): plain and s8 files")
            let (e, s) = maxAbsError(b, try MoVQModel(contentsOf: d + "/\(name)-qp.mvq", backend: .reference).decode(latent: z))
            XCTAssertLessThan(e, 6e-2 * max(1, s), "\(name) int8 fast vs reference")  // per-layer bounds: OperatorTests
        }
    }

    /// A packed model converts to another precision (the demo model has no
    /// checkpoint in the repo): fp32 round trip is exact, int8 and fp16 stay
    /// close on the real demo images.
    func testPackedModelReconverts() throws {
        let d = TestPaths.scratch()
        for p in Precision.allCases { try Converter.convert(source: TestPaths.demoModel, output: d + "/\(p).mvq", precision: p) }
        let demo = try MoVQModel(contentsOf: TestPaths.demoModel)
        let x = try ImageConversion.tensor(from: try TestPaths.demoImages.map { try PNG.read(path: $0) }, channels: demo.config.inChannels)
        let idx = try demo.quantize(latent: try demo.encode(images: x))
        let want = try demo.decode(indices: idx)
        XCTAssertEqual(try MoVQModel(contentsOf: d + "/fp32.mvq").decode(indices: idx).data, want.data)
        for (p, minPSNR) in [(Precision.fp16, 60.0), (.int8, 35.0)] {
            let m = try MoVQModel(contentsOf: d + "/\(p).mvq")
            XCTAssertEqual(m.weightPrecision, p)
            let got = try m.decode(indices: idx)
            for i in 0..<x.shape[0] {
                XCTAssertGreaterThan(try ImageComparison.compare(got, want, image: i).psnr, minPSNR, "\(p) image \(i)")
            }
        }
    }

    func testInt8ConversionIsDeterministic() throws {
        let d = TestPaths.scratch()
        for f in ["a", "b"] { try Converter.convert(source: TestPaths.fixture("tiny_movq/original.ckpt"), output: d + "/\(f).mvq", precision: .int8) }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d + "/a.mvq")), try Data(contentsOf: URL(fileURLWithPath: d + "/b.mvq")))
    }

    func testInt8TensorWithoutValidScalesIsRejected() throws {
        let d = TestPaths.scratch()
        let path = d + "/q.mvq"
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: path, precision: .int8)
        let file = try PackedFile(path: path)
        let victim = try XCTUnwrap(file.header.tensors.first { $0.dtype == .i8 })
        // Point the tensor at a scale tensor that does not exist, then re-serialize the header.
        var header = file.header
        let i = header.tensors.firstIndex { $0.name == victim.name }!
        header.tensors[i].scales = String(victim.scales!.dropLast()) + "X"  // same length: same header size
        try rewriteHeader(path, header)
        assertThrows("lacks an f32 scale tensor") { try PackedFile(path: path) }
        // A negative scale.
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: path, precision: .int8)
        let s = try XCTUnwrap(file.entry(victim.scales!))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes.replaceSubrange(s.offset..<(s.offset + 4), with: withUnsafeBytes(of: Float(-1).bitPattern.littleEndian) { Data($0) })
        try bytes.write(to: URL(fileURLWithPath: path))
        assertThrows("negative, NaN or infinite") { try PackedFile(path: path, verifyChecksums: false) }
        // An s8 tensor's row sums (the second half of its scale tensor) must be integers an int8 row can sum to.
        try Converter.convert(source: TestPaths.fixture("tiny_vqgan/diffusers"), output: path, precision: .int8)
        let s8 = try PackedFile(path: path)
        let w = try XCTUnwrap(s8.header.tensors.first { $0.layout == "winograd6-s8" })
        let ws = try XCTUnwrap(s8.entry(w.scales!))
        XCTAssertEqual(ws.shape, TensorLayout.winograd6S8.scaleShape(w.shape))
        for bad in [Float(127 * w.shape[1] + 1), 0.5, .nan] {
            var b = try Data(contentsOf: URL(fileURLWithPath: path))
            let at = ws.offset + ws.bytes - 4
            b.replaceSubrange(at..<(at + 4), with: withUnsafeBytes(of: bad.bitPattern.littleEndian) { Data($0) })
            let p2 = d + "/bad-sum.mvq"
            try b.write(to: URL(fileURLWithPath: p2))
            assertThrows("row sums") { try PackedFile(path: p2, verifyChecksums: false) }
        }
    }

    func testImageComparisonMetrics() throws {
        var rng = SeededGenerator(seed: 1)
        let shape = [2, 3, 20, 17], n = shape.reduce(1, *)
        let a = try Tensor(shape: shape, data: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
        let same = try ImageComparison.compare(a, a, image: 1)
        XCTAssertEqual(same.psnr, .infinity); XCTAssertEqual(same.maxAbsError, 0); XCTAssertEqual(same.ssim, 1, accuracy: 1e-12)
        // A constant offset of 0.02 on [-1, 1] is 0.01 on [0, 1]: MSE 1e-4, PSNR 40 dB.
        let b = try Tensor(shape: shape, data: a.data.map { $0 + 0.02 })
        let c = try ImageComparison.compare(b, a, image: 0)
        XCTAssertEqual(c.psnr, 40, accuracy: 1e-3)
        XCTAssertEqual(c.maxAbsError, 0.02, accuracy: 1e-6)
        XCTAssertLessThan(c.ssim, 1); XCTAssertGreaterThan(c.ssim, 0.99)
        // Independent noise images are structurally unrelated.
        let noise = try Tensor(shape: shape, data: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
        XCTAssertLessThan(try ImageComparison.compare(noise, a, image: 0).ssim, 0.2)
        assertThrows("cannot compare") { try ImageComparison.compare(a, try Tensor(shape: [1, 3, 20, 17], data: [Float](repeating: 0, count: n / 2)), image: 0) }
    }
}

/// Rewrites a packed file's header (and its CRC), keeping the tensor data
/// where it is: only for headers of the original length.
func rewriteHeader(_ path: String, _ header: PackedHeader) throws {
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys]
    let hb = Array(try enc.encode(header))
    let oldLen = Int(data[16..<24].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    precondition(hb.count == oldLen, "the new header must have the old length")
    data.replaceSubrange(24..<28, with: withUnsafeBytes(of: CRC32.checksum(hb).littleEndian) { Data($0) })
    data.replaceSubrange(32..<(32 + oldLen), with: hb)
    try data.write(to: URL(fileURLWithPath: path))
}
