import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO
import MoVQKernelCore

/// Every SIMD operator on every tier this CPU has (the lower ones forced)
/// against the reference kernels, on odd shapes: channel counts that are not multiples of 6 or 16,
/// 1x1 maps, widths that leave vector tails, batch > 1.
final class OperatorTests: XCTestCase {
    /// The CPU's tiers and the lane-emulation ones (AVX2 with 16 and 4 lanes), so every vector width is checked here.
    var tiers: [KernelSet] { (Platform.availableTiers + Platform.laneEmulationTiers).compactMap { Platform.kernels(named: $0) } }

    func random(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &+ 0x9E37_79B9_7F4A_7C15
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int((s >> 33) % 2001) - 1000) / 1000
        }
    }

    func planar(_ t: Tensor, image: Int, _ ws: MapPool) -> FeatureMap {
        let (c, h, w) = (t.shape[1], t.shape[2], t.shape[3])
        let m = ws.map(channels: c, height: h, width: w)
        for ch in 0..<c { for y in 0..<h { for x in 0..<w {
            m.plane(ch)[(y + 1) * m.rowStride + 1 + x] = t.data[((image * c + ch) * h + y) * w + x]
        } } }
        return m
    }

    func tensor(_ m: FeatureMap) -> Tensor {
        var t = Tensor(zeros: [1, m.channels, m.height, m.width])
        for ch in 0..<m.channels { for y in 0..<m.height { for x in 0..<m.width {
            t.data[(ch * m.height + y) * m.width + x] = m.plane(ch)[(y + 1) * m.rowStride + 1 + x]
        } } }
        return t
    }

    func assertBordersZero(_ m: FeatureMap, file: StaticString = #filePath, line: UInt = #line) {
        for ch in 0..<m.channels {
            let p = m.plane(ch)
            for x in 0..<m.rowStride { XCTAssertEqual(p[x], 0, file: file, line: line); XCTAssertEqual(p[(m.height + 1) * m.rowStride + x], 0, file: file, line: line) }
            for y in 1...m.height { XCTAssertEqual(p[y * m.rowStride], 0, file: file, line: line); XCTAssertEqual(p[y * m.rowStride + m.rowStride - 1], 0, file: file, line: line) }
        }
    }

    func testConvMatchesReferenceOnEveryTier() throws {
        let shapes: [(cin: Int, cout: Int, h: Int, w: Int, k: Int, residual: Bool)] = [
            (3, 5, 7, 5, 3, false), (17, 19, 1, 1, 3, true), (4, 37, 6, 9, 1, true), (1, 1, 2, 2, 3, false),
            (20, 7, 13, 3, 3, true), (33, 13, 5, 17, 3, false), (8, 6, 4, 40, 1, false),
            // 1x1: group pairs with a partial second group, a pair plus a single, exactly one pair; a half-used
            // last position chunk; input channels past one L2 block (partial sums carried between blocks).
            (600, 11, 30, 37, 1, true), (600, 11, 29, 38, 1, true), (7, 13, 2, 7, 1, true), (13, 12, 1, 30, 1, false), (5, 24, 3, 3, 1, false), (9, 13, 1, 10, 1, true), (700, 12, 2, 5, 1, true),
        ]
        for k in tiers {
            for (i, s) in shapes.enumerated() {
                let g = Conv2DGeometry(inChannels: s.cin, outChannels: s.cout, kernel: s.k)
                let x = try Tensor(shape: [2, s.cin, s.h, s.w], data: random(2 * s.cin * s.h * s.w, seed: UInt64(i)))
                let r = try Tensor(shape: [2, s.cout, s.h, s.w], data: random(2 * s.cout * s.h * s.w, seed: UInt64(50 + i)))
                let w = random(s.cout * s.cin * s.k * s.k, seed: UInt64(100 + i)), b = random(s.cout, seed: UInt64(200 + i))
                try w.withUnsafeBufferPointer { wp in try b.withUnsafeBufferPointer { bp in
                    let want = Conv2DReference.forward(x, weight: wp, bias: bp, geometry: g, residual: s.residual ? r : nil, parallelism: Parallelism(threads: 1))
                    let conv = ConvOperator(weight: .floats(wp), bias: bp, inChannels: s.cin, outChannels: s.cout, kernel: s.k)
                    let ws = MapPool()
                    defer { withExtendedLifetime(ws) {} }
                    for image in 0..<2 {
                        let inp = planar(x, image: image, ws), res = planar(r, image: image, ws)
                        let out = ws.map(channels: s.cout, height: s.h, width: s.w)
                        let ctx = ExecutionContext(kernels: k, parallelism: Parallelism(threads: 3))
                        conv(inp, into: out, residual: s.residual ? res : nil, scratch: ws.scratch(conv.scratchFloats(height: s.h, width: s.w, ctx)), ctx)
                        let per = s.cout * s.h * s.w
                        let wantImage = try Tensor(shape: [1, s.cout, s.h, s.w], data: Array(want.data[(image * per)..<((image + 1) * per)]))
                        let (e, sc) = maxAbsError(tensor(out), wantImage)
                        XCTAssertLessThan(e, 1e-5 * max(1, sc), "\(k.name) shape \(s)")
                        assertBordersZero(out)
                    }
                } }
            }
        }
    }

    /// Winograd F(2x2, 3x3) against the reference convolution: odd heights
    /// and widths (clipped edge tiles), 1x1 and 1xN maps, channel counts that
    /// are not multiples of 6 or 16, blocks spanning tile rows, residuals,
    /// and thread counts 1 and 3 (bit-identical).
    func testWinogradMatchesReferenceOnEveryTier() throws {
        let shapes: [(cin: Int, cout: Int, h: Int, w: Int, residual: Bool)] = [
            (3, 5, 7, 5, false), (17, 19, 1, 1, true), (9, 13, 2, 2, false), (20, 7, 13, 3, true),
            (33, 13, 5, 17, false), (16, 37, 1, 9, true), (8, 8, 32, 33, true), (40, 24, 23, 64, false),
        ]
        for k in tiers {
            for (i, s) in shapes.enumerated() {
                let g = Conv2DGeometry(inChannels: s.cin, outChannels: s.cout, kernel: 3)
                let x = try Tensor(shape: [1, s.cin, s.h, s.w], data: random(s.cin * s.h * s.w, seed: UInt64(300 + i)))
                let r = try Tensor(shape: [1, s.cout, s.h, s.w], data: random(s.cout * s.h * s.w, seed: UInt64(350 + i)))
                let w = random(s.cout * s.cin * 9, seed: UInt64(400 + i)), b = random(s.cout, seed: UInt64(450 + i))
                w.withUnsafeBufferPointer { wp in b.withUnsafeBufferPointer { bp in
                    let want = Conv2DReference.forward(x, weight: wp, bias: bp, geometry: g, residual: s.residual ? r : nil, parallelism: Parallelism(threads: 1))
                    let conv = ConvOperator(weight: .floats(wp), bias: bp, inChannels: s.cin, outChannels: s.cout, kernel: 3, algorithm: .winograd)
                    XCTAssertEqual(conv.algorithm, .winograd)
                    let ws = MapPool()
                    defer { withExtendedLifetime(ws) {} }
                    let inp = planar(x, image: 0, ws), res = planar(r, image: 0, ws)
                    var outs: [Tensor] = []
                    for threads in [1, 3] {
                        let out = ws.map(channels: s.cout, height: s.h, width: s.w)
                        let ctx = ExecutionContext(kernels: k, parallelism: Parallelism(threads: threads))
                        conv(inp, into: out, residual: s.residual ? res : nil, scratch: ws.scratch(conv.scratchFloats(height: s.h, width: s.w, ctx)), ctx)
                        let (e, sc) = maxAbsError(tensor(out), want)
                        XCTAssertLessThan(e, 1e-5 * max(1, sc), "\(k.name) shape \(s) threads \(threads)")
                        assertBordersZero(out)
                        outs.append(tensor(out))
                    }
                    XCTAssertEqual(outs[0], outs[1], "\(k.name) shape \(s): thread count changed the result")
                } }
            }
        }
    }

    /// Integer Winograd (int8 weights) against the reference convolution with
    /// the same (dequantized) weights, plain and upsample mode. Int16 mode's
    /// only extra error is the per-tile input quantization (< 0.5 / 32767 of
    /// the tile's largest input); byte mode rounds inputs and transformed
    /// weights to 8 bits (< 0.5 / 127 of each tile's and row's largest
    /// value). Integer GEMMs make either bit-identical across tiers (byte
    /// mode: u8 x s8 quads on VNNI, int16 pairs elsewhere) and thread counts.
    func testInt16WinogradMatchesReferenceOnEveryTier() throws {
        for byteMode in [false, true] { try checkIntegerWinograd(byteMode: byteMode) }
    }

    func checkIntegerWinograd(byteMode: Bool) throws {
        let shapes: [(cin: Int, cout: Int, h: Int, w: Int, residual: Bool, upsample: Bool)] = [
            (9, 13, 7, 5, false, false), (17, 19, 1, 1, true, false), (8, 8, 2, 3, false, false), (33, 13, 5, 17, true, false),
            (40, 24, 23, 64, false, false), (9, 37, 16, 3, false, true), (17, 8, 1, 1, false, true), (20, 24, 5, 17, false, true),
        ]
        for (i, s) in shapes.enumerated() {
            let g = Conv2DGeometry(inChannels: s.cin, outChannels: s.cout, kernel: 3)
            let x = try Tensor(shape: [1, s.cin, s.h, s.w], data: random(s.cin * s.h * s.w, seed: UInt64(700 + i)))
            let r = try Tensor(shape: [1, s.cout, s.h, s.w], data: random(s.cout * s.h * s.w, seed: UInt64(750 + i)))
            // int8 weights: q in [-127, 127] times a per-channel scale (channel 0 all zero).
            let scales = random(s.cout, seed: UInt64(800 + i)).enumerated().map { $0.offset == 0 ? Float(0) : abs($0.element) / 100 + 1e-3 }
            let q = random(s.cout * s.cin * 9, seed: UInt64(850 + i)).map { ($0 * 127).rounded() }
            let w = q.indices.map { q[$0] * scales[$0 / (s.cin * 9)] }, b = random(s.cout, seed: UInt64(900 + i))
            let q8 = q.map { Int8($0) }
            w.withUnsafeBufferPointer { wp in b.withUnsafeBufferPointer { bp in scales.withUnsafeBufferPointer { sp in q8.withUnsafeBufferPointer { qp in
                let input = s.upsample ? UpsampleReference.nearest2x(x) : x
                let want = Conv2DReference.forward(input, weight: wp, bias: bp, geometry: g, residual: s.residual ? r : nil, parallelism: Parallelism(threads: 1))
                var outs: [Tensor] = []
                for k in tiers {
                    for threads in [1, 3] {
                        let ws = MapPool()
                        defer { withExtendedLifetime(ws) {} }
                        let inp = planar(x, image: 0, ws), res = planar(r, image: 0, ws)
                        let out = ws.map(channels: s.cout, height: input.shape[2], width: input.shape[3])
                        let ctx = ExecutionContext(kernels: k, parallelism: Parallelism(threads: threads))
                        if s.upsample {
                            let up = UpsampleConvOperator(weight: .int8(qp, scales: sp), bias: bp, inChannels: s.cin, outChannels: s.cout,
                                                          quads: k.quadWinograd != nil, byteMode: byteMode)
                            XCTAssertEqual(up.int16?.offsets != nil, byteMode && k.quadWinograd != nil)
                            up(inp, into: out, scratch: ws.scratch(up.scratchFloats(height: s.h, width: s.w, ctx)), ctx)
                        } else {
                            let conv = ConvOperator(weight: .int8(qp, scales: sp), bias: bp, inChannels: s.cin, outChannels: s.cout, kernel: 3,
                                                    quads: k.quadWinograd != nil, byteMode: byteMode)
                            XCTAssertEqual(conv.algorithm, .winogradInt16)
                            XCTAssertEqual(conv.int16?.scaleStride != 0, byteMode)
                            conv(inp, into: out, residual: s.residual ? res : nil, scratch: ws.scratch(conv.scratchFloats(height: s.h, width: s.w, ctx)), ctx)
                        }
                        let (e, sc) = maxAbsError(tensor(out), want)
                        XCTAssertLessThan(e, (byteMode ? 2e-2 : 2e-4) * max(1, sc), "\(k.name) shape \(s) threads \(threads) byte mode \(byteMode)")
                        assertBordersZero(out)
                        outs.append(tensor(out))
                    }
                }
                for o in outs.dropFirst() { XCTAssertEqual(o, outs[0], "shape \(s) byte mode \(byteMode): tiers or thread counts differ") }
            } } } }
        }
    }

    func testInt16WinogradWeightPacking() {
        // U' = (2G) q (2G)^T is exact: a kernel with a single 1 at the centre gives U' = (2G)[:,1] (2G)[:,1]^T.
        var q = [Int8](repeating: 0, count: 2 * 3 * 9)
        q[(1 * 3 + 2) * 9 + 4] = 1  // output 1, input 2, centre tap
        let p = q.withUnsafeBufferPointer { q in [Float(0.5), 0.25].withUnsafeBufferPointer { WinogradInt16Weights.pack(q, scales: $0, outChannels: 2, inChannels: 3) } }
        let col = [0, 1, -1, 0]
        let pairs = 2, groups = 1
        for point in 0..<16 {
            let word = p.words[((point * groups) * pairs + 1) * 6 + 1]  // input pair 1 (channels 2, 3), output 1
            XCTAssertEqual(Int16(truncatingIfNeeded: word), Int16(col[point / 4] * col[point % 4]), "point \(point)")
            XCTAssertEqual(word >> 16, 0)
        }
        XCTAssertEqual(p.scales[0], 0.125); XCTAssertEqual(p.scales[1], 0.0625)
        XCTAssertEqual(p.limit, 32767)
        // Large channel counts lower the limit so int32 sums cannot overflow.
        let big = [Int8](repeating: 127, count: 1 * 4096 * 9).withUnsafeBufferPointer { q in [Float(1)].withUnsafeBufferPointer { WinogradInt16Weights.pack(q, scales: $0, outChannels: 1, inChannels: 4096) } }
        XCTAssertLessThanOrEqual(Double(big.limit) * 4096 * 9 * 127, Double(Int32.max))
        XCTAssertGreaterThan(big.limit, 100)
    }

    /// Winograd upsample mode against nearest2x + reference convolution.
    func testUpsampleConvMatchesReferenceOnEveryTier() throws {
        let shapes: [(cin: Int, cout: Int, h: Int, w: Int)] = [
            (3, 5, 1, 1), (17, 7, 3, 5), (8, 13, 2, 9), (20, 24, 5, 17), (9, 37, 16, 3),
        ]
        for k in tiers {
            for (i, s) in shapes.enumerated() {
                let g = Conv2DGeometry(inChannels: s.cin, outChannels: s.cout, kernel: 3)
                let x = try Tensor(shape: [1, s.cin, s.h, s.w], data: random(s.cin * s.h * s.w, seed: UInt64(500 + i)))
                let w = random(s.cout * s.cin * 9, seed: UInt64(550 + i)), b = random(s.cout, seed: UInt64(600 + i))
                w.withUnsafeBufferPointer { wp in b.withUnsafeBufferPointer { bp in
                    let want = Conv2DReference.forward(UpsampleReference.nearest2x(x), weight: wp, bias: bp, geometry: g, residual: nil, parallelism: Parallelism(threads: 1))
                    let up = UpsampleConvOperator(weight: .floats(wp), bias: bp, inChannels: s.cin, outChannels: s.cout)
                    let ws = MapPool()
                    defer { withExtendedLifetime(ws) {} }
                    let inp = planar(x, image: 0, ws)
                    var outs: [Tensor] = []
                    for threads in [1, 3] {
                        let out = ws.map(channels: s.cout, height: 2 * s.h, width: 2 * s.w)
                        let ctx = ExecutionContext(kernels: k, parallelism: Parallelism(threads: threads))
                        up(inp, into: out, scratch: ws.scratch(up.scratchFloats(height: s.h, width: s.w, ctx)), ctx)
                        let (e, sc) = maxAbsError(tensor(out), want)
                        XCTAssertLessThan(e, 1e-5 * max(1, sc), "\(k.name) shape \(s) threads \(threads)")
                        assertBordersZero(out)
                        outs.append(tensor(out))
                    }
                    XCTAssertEqual(outs[0], outs[1], "\(k.name) shape \(s): thread count changed the result")
                } }
            }
        }
    }

    /// The MaskGIT tokenizer's TensorFlow-style average pool: bit-identical to
    /// the reference on odd sizes (partial windows at the bottom/right edge).
    func testAveragePoolMatchesReferenceBitForBit() throws {
        let shapes: [(c: Int, h: Int, w: Int)] = [(3, 1, 1), (5, 7, 4), (2, 6, 9), (17, 5, 5), (4, 16, 12)]
        for (i, s) in shapes.enumerated() {
            let x = try Tensor(shape: [1, s.c, s.h, s.w], data: random(s.c * s.h * s.w, seed: UInt64(700 + i)))
            let want = AveragePoolReference.forward(x)
            XCTAssertEqual(want.shape, [1, s.c, (s.h + 1) / 2, (s.w + 1) / 2])
            let ws = MapPool()
            defer { withExtendedLifetime(ws) {} }
            for threads in [1, 3] {
                let out = ws.map(channels: s.c, height: (s.h + 1) / 2, width: (s.w + 1) / 2)
                AveragePoolOperator()(planar(x, image: 0, ws), into: out, ExecutionContext(kernels: tiers[0], parallelism: Parallelism(threads: threads)))
                XCTAssertEqual(tensor(out), want, "shape \(s) threads \(threads)")
                assertBordersZero(out)
            }
        }
        // A partial window averages only the pixels that exist.
        let t = try Tensor(shape: [1, 1, 3, 3], data: [1, 2, 3, 4, 5, 6, 7, 8, 9])
        XCTAssertEqual(AveragePoolReference.forward(t).data, [3, 4.5, 7.5, 9])
    }

    /// GroupNorm + SCN + SiLU against the reference; the SCN modulation
    /// maps must equal the reference 1x1 convolutions bit for bit.
    func testNormMatchesReferenceOnEveryTier() throws {
        for k in tiers {
            for (c, h, w, groups, mh, mw) in [(6, 4, 6, 3, 2, 3), (32, 5, 3, 32, 5, 3), (12, 8, 17, 4, 1, 1), (4, 1, 1, 2, 1, 1)] {
                let x = try Tensor(shape: [1, c, h, w], data: random(c * h * w, seed: UInt64(c * 7 + w)).map { $0 * 3 + 0.5 })
                let gamma = random(c, seed: 1), beta = random(c, seed: 2)
                let cy = random(c * 2, seed: 3), cyb = random(c, seed: 4), cb = random(c * 2, seed: 5), cbb = random(c, seed: 6)
                let zq = try Tensor(shape: [1, 2, mh, mw], data: random(2 * mh * mw, seed: 7))
                [gamma, beta, cy, cyb, cb, cbb].withPointers { p in
                    let g1 = Conv2DGeometry(inChannels: 2, outChannels: c, kernel: 1), one = Parallelism(threads: 1)
                    let mod = SpatialModulation(scale: Conv2DReference.forward(zq, weight: p[2], bias: p[3], geometry: g1, parallelism: one),
                                                shift: Conv2DReference.forward(zq, weight: p[4], bias: p[5], geometry: g1, parallelism: one))
                    let ctx = ExecutionContext(kernels: k, parallelism: Parallelism(threads: 2))
                    let ws = MapPool()
                    defer { withExtendedLifetime(ws) {} }
                    let scale = ws.scratch(c * mh * mw), shift = ws.scratch(c * mh * mw)
                    ModulationOperator(channels: c, conditionChannels: 2, weights: (cy, cb), biases: (cyb, cbb))(planar(zq, image: 0, ws), scale: scale, shift: shift, ctx)
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: scale, count: c * mh * mw)), mod.scale.data, "\(k.name) modulation scale")
                    XCTAssertEqual(Array(UnsafeBufferPointer(start: shift, count: c * mh * mw)), mod.shift.data, "\(k.name) modulation shift")
                    let norm = GroupNormOperator(gamma: gamma, beta: beta, groups: groups, eps: 1e-6)
                    for silu in [false, true] {
                        let want = GroupNormReference.forward(x, gamma: p[0], beta: p[1], groups: groups, eps: 1e-6, modulation: mod, silu: silu, parallelism: one)
                        let inp = planar(x, image: 0, ws), out = ws.map(channels: c, height: h, width: w)
                        norm(inp, into: out, modulation: .init(scale: scale, shift: shift, height: mh, width: mw), silu: silu, ctx)
                        let (e, _) = maxAbsError(tensor(out), want)
                        XCTAssertLessThan(e, 2e-5, "\(k.name) c \(c) \(h)x\(w) silu \(silu)")
                        assertBordersZero(out)
                    }
                }
            }
        }
    }

    /// The single-query attention (autoregressive steps) against a Double
    /// computation, on key counts below, at and past a vector, with strides.
    func testSingleQueryAttentionOnEveryTier() {
        for k in tiers {
            for (n, c) in [(1, 1), (5, 3), (16, 8), (17, 4), (40, 7)] {
                let ks = n + 9, qs = 3, os = 2
                let keys = random(c * ks, seed: UInt64(n * 10 + c)), values = random(c * ks, seed: UInt64(n * 10 + c + 1))
                let q = random(c * qs, seed: UInt64(n + c)).map { $0 * 4 }
                var out = [Float](repeating: 0, count: c * os)
                var scores = [Float](repeating: .nan, count: (n + 15) / 16 * 16)
                keys.withUnsafeBufferPointer { kp in values.withUnsafeBufferPointer { vp in q.withUnsafeBufferPointer { qp in
                    out.withUnsafeMutableBufferPointer { op in scores.withUnsafeMutableBufferPointer { sp in
                        k.attendOne(AttendOneArgs(query: qp.baseAddress!, queryStride: qs, keys: kp.baseAddress!, values: vp.baseAddress!, keyStride: ks,
                                                  count: n, channels: c, scale: 0.6, output: op.baseAddress!, outputStride: os, scores: sp.baseAddress!))
                    } }
                } } }
                let s = (0..<n).map { j in 0.6 * (0..<c).reduce(0.0) { $0 + Double(q[$1 * qs]) * Double(keys[$1 * ks + j]) } }
                let e = s.map { Foundation.exp($0 - s.max()!) }, total = e.reduce(0, +)
                for ch in 0..<c {
                    let want = (0..<n).reduce(0.0) { $0 + e[$1] / total * Double(values[ch * ks + $1]) }
                    XCTAssertEqual(Double(out[ch * os]), want, accuracy: 1e-5, "\(k.name) n \(n) c \(c) channel \(ch)")
                }
            }
        }
    }

    /// The blocked attention against a direct Double computation: key counts
    /// below, at and past one key block (and not multiples of 6), in one
    /// block and in forced blocks of 12 and 96 keys, query counts that leave a
    /// half-used or nearly empty last chunk or span two query blocks.
    func testBlockedAttentionMatchesDirectSoftmaxOnEveryTier() {
        for k in tiers {
            for (i, s) in [(c: 5, m: 3, n: 1), (c: 48, m: 257, n: 257), (c: 7, m: 40, n: 96), (c: 13, m: 17, n: 97), (c: 64, m: 33, n: 200)].enumerated() {
              for kb in [nil, 12, 96] {
                let chunk = k.chunk, np = (max(s.m, s.n) + chunk - 1) / chunk * chunk + 2 * chunk
                let q = random(s.c * np, seed: UInt64(300 + i)).map { $0 * 3 }, key = random(s.c * np, seed: UInt64(400 + i)).map { $0 * 3 }
                let v = random(s.c * np, seed: UInt64(500 + i))
                let scale = 1 / Float(s.c).squareRoot()
                let outs = [1, 3].map { threads -> [Float] in
                    var out = [Float](repeating: 0, count: s.c * np)
                    var scratch = [Float](repeating: .nan, count: Attention.scratchFloats(channels: s.c, keys: s.n, chunk: chunk, keyBlock: kb))
                    q.withUnsafeBufferPointer { qp in key.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
                        out.withUnsafeMutableBufferPointer { op in scratch.withUnsafeMutableBufferPointer { sp in
                            Attention.attend(q: qp.baseAddress!, queries: s.m, queryStride: np, k: kp.baseAddress!, v: vp.baseAddress!, keys: s.n,
                                             keyStride: np, out: op.baseAddress!, outStride: np, channels: s.c, scale: scale,
                                             scratch: sp.baseAddress!, keyBlock: kb, ExecutionContext(kernels: k, parallelism: Parallelism(threads: threads)))
                        } }
                    } } }
                    return out
                }
                let out = outs[0]
                for ch in 0..<s.c { for qi in 0..<s.m { XCTAssertEqual(outs[1][ch * np + qi], out[ch * np + qi], "\(k.name) threads 3 vs 1") } }
                var worst = 0.0
                for qi in 0..<s.m {
                    let scores = (0..<s.n).map { j in (0..<s.c).reduce(0.0) { $0 + Double(q[$1 * np + qi]) * Double(key[$1 * np + j]) } * Double(scale) }
                    let mx = scores.max()!, e = scores.map { Foundation.exp($0 - mx) }, sum = e.reduce(0, +)
                    for ch in 0..<s.c {
                        let want = (0..<s.n).reduce(0.0) { $0 + e[$1] * Double(v[ch * np + $1]) } / sum
                        worst = max(worst, abs(Double(out[ch * np + qi]) - want))
                    }
                }
                XCTAssertLessThan(worst, 2e-6, "\(k.name) shape \(s) key block \(String(describing: kb))")
              }
            }
        }
    }

    func testKeyBlocks() {
        XCTAssertEqual(Attention.keyBlock(keys: 257), 257)
        XCTAssertEqual(Attention.keyBlock(keys: 1024), 1024)
        XCTAssertEqual(Attention.keyBlock(keys: 1025), 516)   // two blocks, scores within the budget
        XCTAssertLessThanOrEqual(Attention.keyBlock(keys: 4097) * Attention.queryBlock, Attention.maxScoreFloats)
    }

    func testSoftmaxAndExpOnEveryTier() {
        // Online softmax down planes (attention scores, key-major, in key blocks): every column is its own
        // softmax; after the blocks the running maximum and sum are those of all planes, each block's
        // correction is exp(old max - new max), and a block's values are exp(scaled score - running max).
        for k in tiers {
            for n in [1, 5, 16, 37] {
                let columns = 2 * k.lanes + 3, stride = 3 * k.lanes, vectors = (columns + k.lanes - 1) / k.lanes
                var buf = random(n * stride, seed: UInt64(n)).map { $0 * 20 }
                let original = buf
                var mx = [Float](repeating: -.infinity, count: stride), sum = [Float](repeating: 0, count: stride)
                var corr = [Float](repeating: 0, count: stride)
                let blocks = n == 1 ? [0..<1] : [0..<(n / 2), (n / 2)..<n]
                var before = mx
                for b in blocks {
                    before = mx
                    buf.withUnsafeMutableBufferPointer { bp in mx.withUnsafeMutableBufferPointer { m in sum.withUnsafeMutableBufferPointer { l in
                        corr.withUnsafeMutableBufferPointer { c in
                            k.softmaxBlock(SoftmaxBlockArgs(scores: bp.baseAddress! + b.lowerBound * stride, planeStride: stride, planes: b.count,
                                                            scale: 0.7, runningMax: m.baseAddress!, runningSum: l.baseAddress!,
                                                            correction: c.baseAddress!), 0..<(vectors * k.lanes))
                        }
                    } } }
                }
                for q in 0..<columns {
                    let col = (0..<n).map { Double(original[$0 * stride + q]) * 0.7 }
                    let m = col.max()!
                    XCTAssertEqual(Double(mx[q]), m, accuracy: 1e-5 * max(1, abs(m)), "\(k.name) n \(n) column \(q) max")
                    XCTAssertEqual(Double(sum[q]), col.map { Foundation.exp($0 - m) }.reduce(0, +), accuracy: 1e-5 * Double(n), "\(k.name) n \(n) sum")
                    if n > 1 { XCTAssertEqual(Double(corr[q]), Foundation.exp(Double(before[q]) - m), accuracy: 1e-6, "\(k.name) correction") }
                    for j in blocks.last! { XCTAssertEqual(Double(buf[j * stride + q]), Foundation.exp(col[j] - m), accuracy: 1e-6, "\(k.name) n \(n) value") }
                }
            }
        }
        for x: Float in [-87, -20, -1.5, -1e-3, 0, 0.3, 1, 10, 80] {
            let v = vexp(SIMD4<Float>(repeating: x), SeparateMulAdd.self)[0]
            XCTAssertEqual(Double(v), Foundation.exp(Double(x)), accuracy: 3e-7 * Foundation.exp(Double(x)), "exp(\(x))")
        }
    }
}

extension Array where Element == [Float] {
    /// Calls `body` with stable buffer pointers to every array.
    func withPointers<R>(_ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
        let copies = map { a -> UnsafeMutableBufferPointer<Float> in
            let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: a.count); _ = p.initialize(from: a); return p
        }
        defer { copies.forEach { $0.deallocate() } }
        return try body(copies.map { UnsafeBufferPointer($0) })
    }
}

/// Feature maps and scratch for operator tests, freed with the pool.
final class MapPool {
    private var buffers: [UnsafeMutablePointer<Float>] = []

    /// A map with zero borders (interior undefined).
    func map(channels: Int, height: Int, width: Int) -> FeatureMap {
        let m = FeatureMap(base: scratch(FeatureMap.floats(channels: channels, height: height, width: width)), channels: channels, height: height, width: width)
        m.zeroAllBorders()
        return m
    }

    /// `floats` floats, 64-byte aligned (NaN-filled, so nothing relies on their contents).
    func scratch(_ floats: Int) -> UnsafeMutablePointer<Float> {
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(64, floats * 4), alignment: 64).bindMemory(to: Float.self, capacity: max(16, floats))
        p.initialize(repeating: .nan, count: max(16, floats))
        buffers.append(p)
        return p
    }

    deinit { buffers.forEach { $0.deallocate() } }
}
