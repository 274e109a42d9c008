import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The reference kernels against textbook formulas written independently
/// here, on odd shapes (non-multiple-of-16 channels, 1x1 maps, batch > 1).
final class ReferenceKernelTests: XCTestCase {
    var rng = SystemRandomNumberGenerator()

    func random(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &* 6364136223846793005 &+ 1442695040888963407
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int((s >> 33) % 2001) - 1000) / 1000
        }
    }

    func naiveConv(_ x: Tensor, _ w: [Float], _ b: [Float], _ g: Conv2DGeometry) -> Tensor {
        let (n, h, wd) = (x.shape[0], x.shape[2], x.shape[3])
        let (oh, ow) = g.outputSize(h: h, w: wd)
        var y = Tensor(zeros: [n, g.outChannels, oh, ow])
        for i in 0..<n { for o in 0..<g.outChannels { for oy in 0..<oh { for ox in 0..<ow {
            var s = Double(b[o])
            for c in 0..<g.inChannels { for ky in 0..<g.kernel { for kx in 0..<g.kernel {
                let iy = oy * g.stride + ky - g.padTop, ix = ox * g.stride + kx - g.padLeft
                if iy >= 0 && iy < h && ix >= 0 && ix < wd {
                    s += Double(w[((o * g.inChannels + c) * g.kernel + ky) * g.kernel + kx]) * Double(x.data[((i * g.inChannels + c) * h + iy) * wd + ix])
                }
            } } }
            y.data[((i * g.outChannels + o) * oh + oy) * ow + ox] = Float(s)
        } } } }
        return y
    }

    func testConvMatchesNaiveOnOddShapes() throws {
        let shapes: [(n: Int, cin: Int, cout: Int, h: Int, w: Int, k: Int, down: Bool)] = [
            (2, 3, 5, 7, 5, 3, false), (1, 17, 19, 1, 1, 3, false), (3, 4, 33, 6, 9, 1, false),
            (2, 5, 5, 9, 7, 3, true), (1, 1, 1, 2, 2, 3, true), (1, 20, 7, 13, 3, 3, false),
        ]
        for (i, s) in shapes.enumerated() {
            let g = s.down ? Conv2DGeometry.downsample(channels: s.cin) : Conv2DGeometry(inChannels: s.cin, outChannels: s.cout, kernel: s.k)
            let x = try Tensor(shape: [s.n, g.inChannels, s.h, s.w], data: random(s.n * g.inChannels * s.h * s.w, seed: UInt64(i)))
            let w = random(g.outChannels * g.inChannels * g.kernel * g.kernel, seed: UInt64(100 + i))
            let b = random(g.outChannels, seed: UInt64(200 + i))
            let res = Tensor(zeros: [s.n, g.outChannels] + [g.outputSize(h: s.h, w: s.w).h, g.outputSize(h: s.h, w: s.w).w])
            let y = w.withUnsafeBufferPointer { wp in b.withUnsafeBufferPointer { bp in
                Conv2DReference.forward(x, weight: wp, bias: bp, geometry: g, residual: res, parallelism: Parallelism(threads: 3))
            } }
            let want = naiveConv(x, w, b, g)
            let (e, _) = maxAbsError(y, want)
            XCTAssertLessThan(e, 1e-4, "shape \(s)")
        }
    }

    func testGroupNormWithModulationAndSiLU() throws {
        let (n, c, h, w, groups) = (2, 6, 4, 6, 3)
        let x = try Tensor(shape: [n, c, h, w], data: random(n * c * h * w, seed: 7).map { $0 * 3 + 1 })
        let gamma = random(c, seed: 8), beta = random(c, seed: 9)
        let scale = try Tensor(shape: [n, c, 2, 3], data: random(n * c * 6, seed: 10))
        let shift = try Tensor(shape: [n, c, 2, 3], data: random(n * c * 6, seed: 11))
        let y = gamma.withUnsafeBufferPointer { gp in beta.withUnsafeBufferPointer { bp in
            GroupNormReference.forward(x, gamma: gp, beta: bp, groups: groups, eps: 1e-6,
                                       modulation: SpatialModulation(scale: scale, shift: shift), silu: true, parallelism: Parallelism(threads: 2))
        } }
        for i in 0..<n { for g in 0..<groups {
            let cpg = c / groups
            var vals: [Double] = []
            for ch in (g * cpg)..<((g + 1) * cpg) { for p in 0..<(h * w) { vals.append(Double(x.data[(i * c + ch) * h * w + p])) } }
            let mean = vals.reduce(0, +) / Double(vals.count)
            let v = vals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(vals.count)
            for ch in (g * cpg)..<((g + 1) * cpg) { for yy in 0..<h { for xx in 0..<w {
                let xv = Double(x.data[((i * c + ch) * h + yy) * w + xx])
                var t = (xv - mean) / (v + 1e-6).squareRoot() * Double(gamma[ch]) + Double(beta[ch])
                let m = ((i * c + ch) * 2 + yy / 2) * 3 + xx / 2  // nearest: 4 -> 2 rows, 6 -> 3 cols
                t = t * Double(scale.data[m]) + Double(shift.data[m])
                t = t / (1 + exp(-t))
                XCTAssertEqual(Double(y.data[((i * c + ch) * h + yy) * w + xx]), t, accuracy: 1e-5)
            } } }
        } }
    }

    func testAttentionMatchesNaive() throws {
        let (n, c, h, w) = (2, 5, 3, 1)
        let t = h * w
        let x = try Tensor(shape: [n, c, h, w], data: random(n * c * t, seed: 20))
        let nrm = try Tensor(shape: [n, c, h, w], data: random(n * c * t, seed: 21))
        let ws = (0..<4).map { random(c * c, seed: UInt64(30 + $0)) }, bs = (0..<4).map { random(c, seed: UInt64(40 + $0)) }
        let ptrs = (ws + bs).map { a -> UnsafeBufferPointer<Float> in
            let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: a.count); _ = p.initialize(from: a); return UnsafeBufferPointer(p)
        }
        defer { ptrs.forEach { $0.deallocate() } }
        let aw = AttentionReference.Projections(q: ptrs[0], qBias: ptrs[4], k: ptrs[1], kBias: ptrs[5], v: ptrs[2], vBias: ptrs[6], out: ptrs[3], outBias: ptrs[7])
        let y = AttentionReference.forward(residual: x, normalized: nrm, weights: aw, parallelism: Parallelism(threads: 2))
        for img in 0..<n {
            func p(_ k: Int, _ i: Int, _ tok: Int) -> Double {
                var s = Double(bs[k][i]); for j in 0..<c { s += Double(ws[k][i * c + j]) * Double(nrm.data[(img * c + j) * t + tok]) }; return s
            }
            for qi in 0..<t {
                var scores: [Double] = []
                for kj in 0..<t {
                    var dot = 0.0
                    for ch in 0..<c { dot += p(0, ch, qi) * p(1, ch, kj) }
                    scores.append(dot / Double(c).squareRoot())
                }
                let mx = scores.max()!
                scores = scores.map { exp($0 - mx) }
                let sum = scores.reduce(0, +)
                let o = (0..<c).map { ch in (0..<t).map { scores[$0] / sum * p(2, ch, $0) }.reduce(0, +) }
                for oc in 0..<c {
                    var s = Double(bs[3][oc]); for ic in 0..<c { s += Double(ws[3][oc * c + ic]) * o[ic] }
                    XCTAssertEqual(Double(y.data[(img * c + oc) * t + qi]), Double(x.data[(img * c + oc) * t + qi]) + s, accuracy: 1e-4)
                }
            }
        }
    }

    func testHalfConversionRoundTrips() {
        for v: Float in [0, -0, 1, -2.5, 65504, 1e-7, 6.1e-5, 3.14159, -1000.5] {
            let h = floatToHalfBits(v)
            XCTAssertEqual(halfBitsToFloat(h), Float(Float16(v)), "\(v)")
        }
        XCTAssertTrue(halfBitsToFloat(floatToHalfBits(.infinity)).isInfinite)
        XCTAssertTrue(halfBitsToFloat(floatToHalfBits(.nan)).isNaN)
    }
}
