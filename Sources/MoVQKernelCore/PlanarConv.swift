/// Direct convolution / GEMM on the *padded planar* layout.
///
/// Every channel is a plane of `(H + 2) x rowStride` floats with a zero
/// border, so a 3x3 convolution becomes a 1-D sum over 9 taps at offsets
/// `tapOrigin + ky * rowStride + kx` from each flat output position `q`:
///
///     out[o][q + outputShift] = bias[o] + sum_i sum_t w[o][i][t] * in[i][q + tap(t)]
///
/// A 1x1 convolution is one tap, and a plain GEMM (`C = A B`, attention) is
/// one tap at origin 0 on unpadded planes. Positions that fall on border
/// columns compute garbage that the caller re-zeroes. Outputs are computed in
/// chunks of `2 * V.scalarCount` positions; the last chunk may run past
/// `positions` (planes carry slack for that).
public struct PlanarConvArgs: @unchecked Sendable {
    public var input: UnsafePointer<Float>
    public var inputPlaneStride: Int
    public var rowStride: Int
    public var kernel: Int
    public var tapOrigin: Int
    /// Packed by `PlanarConvWeights.pack`: `[ceil(O/6)][I][k*k][6]`.
    public var weights: UnsafePointer<Float>
    /// `ceil(O/6) * 6` biases (zero padded).
    public var bias: UnsafePointer<Float>
    public var inChannels: Int
    public var outChannels: Int
    public var output: UnsafeMutablePointer<Float>
    public var outputPlaneStride: Int
    public var outputShift: Int
    /// Added to the output (same row layout and index as the stores; planes
    /// `residualPlaneStride` apart), or nil.
    public var residual: UnsafePointer<Float>?
    public var residualPlaneStride: Int
    /// Number of flat output positions `q` (0 ..< positions).
    public var positions: Int

    public init(input: UnsafePointer<Float>, inputPlaneStride: Int, rowStride: Int, kernel: Int, tapOrigin: Int,
                weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, inChannels: Int, outChannels: Int,
                output: UnsafeMutablePointer<Float>, outputPlaneStride: Int, outputShift: Int,
                residual: UnsafePointer<Float>?, residualPlaneStride: Int? = nil, positions: Int) {
        self.input = input; self.inputPlaneStride = inputPlaneStride; self.rowStride = rowStride
        self.kernel = kernel; self.tapOrigin = tapOrigin; self.weights = weights; self.bias = bias
        self.inChannels = inChannels; self.outChannels = outChannels; self.output = output
        self.outputPlaneStride = outputPlaneStride; self.outputShift = outputShift
        self.residual = residual; self.residualPlaneStride = residualPlaneStride ?? outputPlaneStride; self.positions = positions
    }

    /// Output-channel groups of 6 (the register tile's rows).
    public var groups: Int { (outChannels + 5) / 6 }
}

/// Weight packing for `PlanarConv`.
public enum PlanarConvWeights {
    /// OIHW (`[O][I][k][k]`) -> `[ceil(O/6)][I][k*k][6]`, zero padded.
    public static func pack(_ w: UnsafeBufferPointer<Float>, outChannels o: Int, inChannels i: Int, kernel k: Int) -> [Float] {
        let taps = k * k, groups = (o + 5) / 6
        var out = [Float](repeating: 0, count: groups * i * taps * 6)
        for oc in 0..<o {
            let g = oc / 6, r = oc % 6
            for ic in 0..<i {
                for t in 0..<taps { out[((g * i + ic) * taps + t) * 6 + r] = w[(oc * i + ic) * taps + t] }
            }
        }
        return out
    }

    /// Bias padded to whole groups of 6.
    public static func packBias(_ b: UnsafeBufferPointer<Float>?, outChannels o: Int) -> [Float] {
        var out = [Float](repeating: 0, count: (o + 5) / 6 * 6)
        if let b { for i in 0..<o { out[i] = b[i] } }
        return out
    }
}

/// The 6 x (2 vectors) register tile and the loops around it.
public enum PlanarConv<V: SIMD, M: MulAdd> where V.Scalar == Float {
    /// Positions per register tile.
    @inlinable public static var chunk: Int { 2 * V.scalarCount }

    /// Computes output-channel groups `groups` x position chunks `chunks`,
    /// summing input channels `inputs` only. The first input block starts
    /// from the bias, later blocks continue from the partial sums stored in
    /// the output (a store/load round trip is exact), and the residual is
    /// added after the last block. So every output is summed in the fixed
    /// order (input channel, ky, kx) however callers split the ranges.
    @inlinable
    public static func run(_ a: PlanarConvArgs, groups: Range<Int>, chunks: Range<Int>, inputs: Range<Int>) {
        // A compile-time kernel size removes the tap loops: with a run-time
        // k = 1 their bookkeeping outnumbered the FMAs (front-end bound GEMMs).
        switch a.kernel {
        case 1: run(a, groups: groups, chunks: chunks, inputs: inputs, KernelSize1.self)
        case 2: run(a, groups: groups, chunks: chunks, inputs: inputs, KernelSize2.self)
        case 3: run(a, groups: groups, chunks: chunks, inputs: inputs, KernelSize3.self)
        default: preconditionFailure("PlanarConv supports 1x1, 2x2 and 3x3 kernels")
        }
    }

    @inlinable
    static func run<K: KernelSize>(_ a: PlanarConvArgs, groups: Range<Int>, chunks: Range<Int>, inputs: Range<Int>, _: K.Type) {
        let k = K.value
        let w = V.scalarCount, taps = k * k
        let first = inputs.lowerBound == 0, last = inputs.upperBound == a.inChannels
        var g = groups.lowerBound
        // With 32 vector registers a 1x1 kernel takes two groups at once (a
        // 12 x 2-vector tile: half the input loads per FMA). Sums keep their order.
        if k == 1 && V.scalarCount >= 16 {
            while g + 1 < groups.upperBound {
                runGroupPair(a, group: g, chunks: chunks, inputs: inputs, first: first, last: last)
                g += 2
            }
        }
        for g in g..<groups.upperBound {
            let rows = min(6, a.outChannels - g * 6), ps = a.outputPlaneStride
            let wg = a.weights + (g * a.inChannels + inputs.lowerBound) * taps * 6
            let o = a.output + g * 6 * ps + a.outputShift
            for c in chunks {
                let q = c * 2 * w
                var t = first ? Rows6(bias: a.bias + g * 6) : Rows6(partial: o + q, planeStride: ps, rows: rows)
                var src = a.input + inputs.lowerBound * a.inputPlaneStride + q + a.tapOrigin
                var wp = wg
                for _ in inputs {
                    var row = src
                    for _ in 0..<k {
                        for kx in 0..<k { t.add(wp, row + kx); wp += 6 }
                        row += a.rowStride
                    }
                    src += a.inputPlaneStride
                }
                t.store(o + q, planeStride: ps, rows: rows, residual: last ? a.residual.map { $0 + g * 6 * a.residualPlaneStride + q + a.outputShift } : nil,
                        residualStride: a.residualPlaneStride)
            }
        }
    }
}

extension PlanarConv {
    /// Groups `g` and `g + 1` of a 1x1 kernel over `chunks` (see `run`); a
    /// last chunk whose positions all lie in its first vector computes that vector only.
    @inlinable
    static func runGroupPair(_ a: PlanarConvArgs, group g: Int, chunks: Range<Int>, inputs: Range<Int>, first: Bool, last: Bool) {
        for c in chunks {
            let q = c * 2 * V.scalarCount
            if q + V.scalarCount >= a.positions {
                runGroupPair(a, group: g, position: q, inputs: inputs, first: first, last: last, Rows6x1.self)
            } else {
                runGroupPair(a, group: g, position: q, inputs: inputs, first: first, last: last, Rows6.self)
            }
        }
    }

    /// One tile `T` of groups `g` and `g + 1` at position `q`.
    @inlinable @inline(__always)
    static func runGroupPair<T: PlanarTile>(_ a: PlanarConvArgs, group g: Int, position q: Int, inputs: Range<Int>, first: Bool, last: Bool,
                                            _: T.Type) {
        let ps = a.outputPlaneStride, rows1 = min(6, a.outChannels - (g + 1) * 6)
        let o = a.output + g * 6 * ps + a.outputShift + q
        var t0 = first ? T(bias: a.bias + g * 6) : T(partial: o, planeStride: ps, rows: 6)
        var t1 = first ? T(bias: a.bias + g * 6 + 6) : T(partial: o + 6 * ps, planeStride: ps, rows: rows1)
        var src = a.input + inputs.lowerBound * a.inputPlaneStride + q + a.tapOrigin
        var p0 = a.weights + (g * a.inChannels + inputs.lowerBound) * 6, p1 = p0 + a.inChannels * 6
        for _ in inputs {
            t0.add(p0, src); t1.add(p1, src)
            p0 += 6; p1 += 6; src += a.inputPlaneStride
        }
        let rps = a.residualPlaneStride
        let r = last ? a.residual.map { $0 + g * 6 * rps + q + a.outputShift } : nil
        t0.store(o, planeStride: ps, rows: 6, residual: r, residualStride: rps)
        t1.store(o + 6 * ps, planeStride: ps, rows: rows1, residual: r.map { $0 + 6 * rps }, residualStride: rps)
    }

    /// Six output rows x two vectors of accumulators (one position chunk).
    @usableFromInline
    struct Rows6: PlanarTile {
        @usableFromInline var c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51: V

        @inlinable @inline(__always)
        init(bias b: UnsafePointer<Float>) {
            c00 = V(repeating: b[0]); c01 = c00; c10 = V(repeating: b[1]); c11 = c10
            c20 = V(repeating: b[2]); c21 = c20; c30 = V(repeating: b[3]); c31 = c30
            c40 = V(repeating: b[4]); c41 = c40; c50 = V(repeating: b[5]); c51 = c50
        }

        @inlinable @inline(__always)
        init(partial po: UnsafePointer<Float>, planeStride ps: Int, rows: Int) {
            let w = V.scalarCount
            @inline(__always) func part(_ i: Int, _ off: Int) -> V { i < rows ? load(po + i * ps + off) : V(repeating: 0) }
            c00 = part(0, 0); c01 = part(0, w); c10 = part(1, 0); c11 = part(1, w)
            c20 = part(2, 0); c21 = part(2, w); c30 = part(3, 0); c31 = part(3, w)
            c40 = part(4, 0); c41 = part(4, w); c50 = part(5, 0); c51 = part(5, w)
        }

        @inlinable @inline(__always)
        mutating func add(_ wp: UnsafePointer<Float>, _ src: UnsafePointer<Float>) {
            let x0: V = load(src), x1: V = load(src + V.scalarCount)
            var s = V(repeating: wp[0]); c00 = M.madd(c00, s, x0); c01 = M.madd(c01, s, x1)
            s = V(repeating: wp[1]); c10 = M.madd(c10, s, x0); c11 = M.madd(c11, s, x1)
            s = V(repeating: wp[2]); c20 = M.madd(c20, s, x0); c21 = M.madd(c21, s, x1)
            s = V(repeating: wp[3]); c30 = M.madd(c30, s, x0); c31 = M.madd(c31, s, x1)
            s = V(repeating: wp[4]); c40 = M.madd(c40, s, x0); c41 = M.madd(c41, s, x1)
            s = V(repeating: wp[5]); c50 = M.madd(c50, s, x0); c51 = M.madd(c51, s, x1)
        }

        @inlinable @inline(__always)
        func store(_ o: UnsafeMutablePointer<Float>, planeStride ps: Int, rows: Int, residual r: UnsafePointer<Float>?, residualStride rps: Int) {
            let w = V.scalarCount
            @inline(__always) func put(_ i: Int, _ v0: V, _ v1: V) {
                guard i < rows else { return }
                let dst = o + i * ps
                var y0 = v0, y1 = v1
                if let r { y0 += load(r + i * rps); y1 += load(r + i * rps + w) }
                MoVQKernelCore.store(y0, dst); MoVQKernelCore.store(y1, dst + w)
            }
            put(0, c00, c01); put(1, c10, c11); put(2, c20, c21)
            put(3, c30, c31); put(4, c40, c41); put(5, c50, c51)
        }
    }

    /// Six output rows x one vector of accumulators (a last, half-used chunk).
    @usableFromInline
    struct Rows6x1: PlanarTile {
        @usableFromInline var c0, c1, c2, c3, c4, c5: V

        @inlinable @inline(__always)
        init(bias b: UnsafePointer<Float>) {
            c0 = V(repeating: b[0]); c1 = V(repeating: b[1]); c2 = V(repeating: b[2])
            c3 = V(repeating: b[3]); c4 = V(repeating: b[4]); c5 = V(repeating: b[5])
        }

        @inlinable @inline(__always)
        init(partial po: UnsafePointer<Float>, planeStride ps: Int, rows: Int) {
            @inline(__always) func part(_ i: Int) -> V { i < rows ? load(po + i * ps) : V(repeating: 0) }
            c0 = part(0); c1 = part(1); c2 = part(2); c3 = part(3); c4 = part(4); c5 = part(5)
        }

        @inlinable @inline(__always)
        mutating func add(_ wp: UnsafePointer<Float>, _ src: UnsafePointer<Float>) {
            let x: V = load(src)
            c0 = M.madd(c0, V(repeating: wp[0]), x); c1 = M.madd(c1, V(repeating: wp[1]), x)
            c2 = M.madd(c2, V(repeating: wp[2]), x); c3 = M.madd(c3, V(repeating: wp[3]), x)
            c4 = M.madd(c4, V(repeating: wp[4]), x); c5 = M.madd(c5, V(repeating: wp[5]), x)
        }

        @inlinable @inline(__always)
        func store(_ o: UnsafeMutablePointer<Float>, planeStride ps: Int, rows: Int, residual r: UnsafePointer<Float>?, residualStride rps: Int) {
            @inline(__always) func put(_ i: Int, _ v: V) {
                guard i < rows else { return }
                MoVQKernelCore.store(r.map { v + load($0 + i * rps) } ?? v, o + i * ps)
            }
            put(0, c0); put(1, c1); put(2, c2); put(3, c3); put(4, c4); put(5, c5)
        }
    }
}

/// A register tile of six output rows of `PlanarConv` at one position: it
/// starts from the bias or from partial sums (rows at and past `rows` start
/// at 0 and are never stored), adds the six weights at `wp` times the input
/// at `src`, and stores its rows (plus the residual's, when given).
@usableFromInline
protocol PlanarTile {
    init(bias: UnsafePointer<Float>)
    init(partial: UnsafePointer<Float>, planeStride: Int, rows: Int)
    mutating func add(_ wp: UnsafePointer<Float>, _ src: UnsafePointer<Float>)
    func store(_ o: UnsafeMutablePointer<Float>, planeStride: Int, rows: Int, residual: UnsafePointer<Float>?, residualStride: Int)
}

/// A convolution kernel size known at compile time (see `PlanarConv.run`).
public protocol KernelSize { static var value: Int { get } }
public enum KernelSize1: KernelSize { @inlinable public static var value: Int { 1 } }
public enum KernelSize2: KernelSize { @inlinable public static var value: Int { 2 } }
public enum KernelSize3: KernelSize { @inlinable public static var value: Int { 3 } }
