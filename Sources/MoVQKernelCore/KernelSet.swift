/// The entry points of one ISA tier, chosen once at start-up (MLAS style).
/// All tiers compute the same math from the same generic source; they differ
/// in vector width, FMA use and the registers the compiler may use.
public struct KernelSet: Sendable {
    /// "avx512", "avx2", or "portable".
    public let name: String
    /// Vector lanes of this tier's SIMD type.
    public let lanes: Int
    /// Positions per convolution register tile (`2 * lanes`).
    public var chunk: Int { 2 * lanes }
    public let conv: @Sendable (PlanarConvArgs, Range<Int>, Range<Int>, Range<Int>) -> Void
    /// Winograd F(2x2, 3x3) on one block of tiles: (args, tiles, block tiles, scratch).
    public let winograd: @Sendable (WinogradArgs, Range<Int>, Int, UnsafeMutablePointer<Float>) -> Void
    /// `NormKernels.accumulateRows`: (plane, row stride, rows, width, moments).
    public let accumulateRows: @Sendable (UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Moments>) -> Void
    public let normApply: @Sendable (NormApplyArgs, Range<Int>, UnsafeMutablePointer<Float>) -> Void
    /// FMA peak probe: runs n rounds of `24 * lanes` FLOPs, returns a sink value.
    public let peakProbe: @Sendable (Int) -> Float
    /// Transformer kernels (`TransformerKernels`): GELU, GEGLU, per-position norms.
    public let gelu: @Sendable (UnsafeMutablePointer<Float>, Int) -> Void
    public let geglu: @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void
    public let columnNorm: @Sendable (ColumnNormArgs, Range<Int>) -> Void
    /// Int16 linear layer (`PairGemm`) over a range of columns (whole chunks).
    public let pairLinear: @Sendable (PairLinearArgs, Range<Int>) -> Void
    /// u8 x s8 linear layer (`QuadGemm`, words of 4 channels, `rowOffsets`
    /// set), on tiers with a one-instruction quad dot product (VNNI); nil elsewhere.
    public var quadLinear: (@Sendable (PairLinearArgs, Range<Int>) -> Void)? = nil
    /// `winograd` for byte-mode int8 convolutions with quad words (`WinogradInt16Args.offsets` set),
    /// on the same tiers as `quadLinear`; nil elsewhere (byte mode runs as pairs in `winograd`).
    public var quadWinograd: (@Sendable (WinogradArgs, Range<Int>, Int, UnsafeMutablePointer<Float>) -> Void)? = nil
    /// One query over cached keys (`TransformerKernels.attendOne`).
    public var attendOne: @Sendable (AttendOneArgs) -> Void = { _ in }
    /// One key block of the online softmax (`TransformerKernels.softmaxBlock`): (args, positions).
    public var softmaxBlock: @Sendable (SoftmaxBlockArgs, Range<Int>) -> Void = { _, _ in }
    /// Per-position scaling of planes (`TransformerKernels.scaleColumns`):
    /// (buffer, plane stride, planes, positions, factors, divide).
    public var scaleColumns: @Sendable (UnsafeMutablePointer<Float>, Int, Int, Range<Int>, UnsafePointer<Float>, Bool) -> Void = { _, _, _, _, _, _ in }

    public init(name: String, lanes: Int,
                conv: @escaping @Sendable (PlanarConvArgs, Range<Int>, Range<Int>, Range<Int>) -> Void,
                winograd: @escaping @Sendable (WinogradArgs, Range<Int>, Int, UnsafeMutablePointer<Float>) -> Void,
                accumulateRows: @escaping @Sendable (UnsafePointer<Float>, Int, Int, Int, UnsafeMutablePointer<Moments>) -> Void,
                normApply: @escaping @Sendable (NormApplyArgs, Range<Int>, UnsafeMutablePointer<Float>) -> Void,
                peakProbe: @escaping @Sendable (Int) -> Float,
                gelu: @escaping @Sendable (UnsafeMutablePointer<Float>, Int) -> Void,
                geglu: @escaping @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void,
                columnNorm: @escaping @Sendable (ColumnNormArgs, Range<Int>) -> Void,
                pairLinear: @escaping @Sendable (PairLinearArgs, Range<Int>) -> Void) {
        self.name = name; self.lanes = lanes; self.conv = conv; self.winograd = winograd; self.accumulateRows = accumulateRows
        self.normApply = normApply; self.peakProbe = peakProbe
        self.gelu = gelu; self.geglu = geglu; self.columnNorm = columnNorm; self.pairLinear = pairLinear
    }

    /// Builds a tier from a SIMD type, multiply-add policy and integer pair
    /// dot product. Call it from a module compiled for that tier so the
    /// generic kernels specialize there.
    @inlinable
    public static func make<V: SIMD, M: MulAdd, D: IntegerDot>(name: String, _: V.Type, _: M.Type, _: D.Type) -> KernelSet
    where V.Scalar == Float, D.Floats == V, V: SendableMetatype, M: SendableMetatype, D: SendableMetatype {
        KernelSet(
            name: name, lanes: V.scalarCount,
            conv: { a, g, c, i in PlanarConv<V, M>.run(a, groups: g, chunks: c, inputs: i) },
            winograd: { a, t, b, s in Winograd<V, M>.run(a, tiles: t, blockTiles: b, scratch: s, D.self) },
            accumulateRows: { p, rs, h, w, m in NormKernels<V, M>.accumulateRows(p, rowStride: rs, height: h, width: w, into: &m.pointee) },
            normApply: { a, c, s in NormKernels<V, M>.apply(a, channels: c, scratch: s) },
            peakProbe: { n in PeakProbe<V, M>.run(iterations: n) },
            gelu: { p, n in TransformerKernels<V, M>.gelu(p, count: n) },
            geglu: { a, g, n in TransformerKernels<V, M>.geglu(a, g, count: n) },
            columnNorm: { a, r in
                TransformerKernels<V, M>.columnNorm(a.input, a.output, planeStride: a.planeStride, channels: a.channels, positions: r,
                                                    weight: a.weight, bias: a.bias, eps: a.eps, rms: a.rms)
            },
            pairLinear: { a, cols in
                PairGemm<V>.quantize(a.input, planeStride: a.planeStride, inputs: a.inputs, columns: cols, limit: a.limit,
                                     words: a.words, columnScales: a.columnScales, inverse: a.inverse, D.self)
                PairGemm<V>.multiply(words: a.words, pairs: (a.inputs + 1) / 2, columns: cols, weights: a.weights, rowScales: a.rowScales,
                                     columnScales: a.columnScales, outputs: a.outputs, out: a.output, outStride: a.outputPlaneStride,
                                     bias: a.bias, residual: a.residual, wordStride: a.planeStride, D.self)
            })
            .addingBlockedAttention(V.self, M.self)
            .adding(attendOne: { a in
                TransformerKernels<V, M>.attendOne(q: a.query, queryStride: a.queryStride, k: a.keys, v: a.values, keyStride: a.keyStride,
                                                   keys: a.count, channels: a.channels, scale: a.scale, out: a.output, outStride: a.outputStride,
                                                   scores: a.scores)
            })
    }

    /// This tier with `attendOne` set.
    @inlinable
    public func adding(attendOne f: @escaping @Sendable (AttendOneArgs) -> Void) -> KernelSet {
        var k = self
        k.attendOne = f
        return k
    }

    /// This tier with the blocked-attention helpers of `V` and `M` set
    /// (call it from the tier's module so they specialize there).
    @inlinable
    public func addingBlockedAttention<V: SIMD, M: MulAdd>(_: V.Type, _: M.Type) -> KernelSet
    where V.Scalar == Float, V: SendableMetatype, M: SendableMetatype {
        var k = self
        k.softmaxBlock = { a, r in
            TransformerKernels<V, M>.softmaxBlock(a.scores, planeStride: a.planeStride, planes: a.planes, positions: r, scale: a.scale,
                                                  runningMax: a.runningMax, runningSum: a.runningSum, correction: a.correction)
        }
        k.scaleColumns = { x, ps, n, r, f, d in TransformerKernels<V, M>.scaleColumns(x, planeStride: ps, planes: n, positions: r, factors: f, divide: d) }
        return k
    }
}

extension KernelSet {
    /// This tier plus `quadLinear` and `quadWinograd` with quad dot product
    /// `Q` (call it from the tier's module so the kernels specialize there).
    @inlinable
    public func adding<V: SIMD, M: MulAdd, Q: IntegerDot>(quads: Q.Type, _: V.Type, _: M.Type) -> KernelSet
    where V.Scalar == Float, Q.Floats == V, V: SendableMetatype, M: SendableMetatype, Q: SendableMetatype {
        var k = self
        k.quadWinograd = { a, t, b, s in Winograd<V, M>.run(a, tiles: t, blockTiles: b, scratch: s, Q.self) }
        k.quadLinear = { a, cols in
            QuadGemm<V>.quantize(a.input, planeStride: a.planeStride, inputs: a.inputs, columns: cols,
                                 words: a.words, columnScales: a.columnScales, inverse: a.inverse, Q.self)
            PairGemm<V>.multiply(words: a.words, pairs: (a.inputs + 3) / 4, columns: cols, weights: a.weights, rowScales: a.rowScales,
                                 columnScales: a.columnScales, outputs: a.outputs, out: a.output, outStride: a.outputPlaneStride,
                                 bias: a.bias, residual: a.residual, wordStride: a.planeStride, rowOffsets: a.rowOffsets, Q.self)
        }
        return k
    }
}

/// The portable tier, compiled for the baseline target: 4 lanes, FMA only
/// where the baseline has it (ARM64).
public let portableKernels: KernelSet = {
    #if arch(arm64)
    return KernelSet.make(name: "portable", SIMD4<Float>.self, FusedMulAdd.self, PortablePairDot<SIMD4<Float>, SIMD4<Int32>>.self)
    #else
    return KernelSet.make(name: "portable", SIMD4<Float>.self, SeparateMulAdd.self, PortablePairDot<SIMD4<Float>, SIMD4<Int32>>.self)
    #endif
}()

/// Arguments of `KernelSet.columnNorm` (see `TransformerKernels.columnNorm`).
public struct ColumnNormArgs: @unchecked Sendable {
    public var input: UnsafePointer<Float>
    public var output: UnsafeMutablePointer<Float>
    public var planeStride: Int, channels: Int
    public var weight: UnsafePointer<Float>
    public var bias: UnsafePointer<Float>?
    public var eps: Float
    public var rms: Bool

    public init(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, planeStride: Int, channels: Int,
                weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, eps: Float, rms: Bool) {
        self.input = input; self.output = output; self.planeStride = planeStride; self.channels = channels
        self.weight = weight; self.bias = bias; self.eps = eps; self.rms = rms
    }
}

/// Arguments of `KernelSet.pairLinear`: `output = W' x` (int16, `PairGemm`)
/// `+ bias (+ residual)` on column-major `[features][columns]` buffers whose
/// planes are `planeStride` apart; `words`, `columnScales` and `inverse` are
/// scratch (`ceil(inputs/2)` planes, and one plane each) shared by workers
/// that take disjoint column ranges.
public struct PairLinearArgs: @unchecked Sendable {
    public var input: UnsafePointer<Float>
    public var planeStride: Int, inputs: Int, outputs: Int
    public var weights: UnsafePointer<Int32>
    public var rowScales: UnsafePointer<Float>
    public var limit: Float
    public var bias: UnsafePointer<Float>?
    public var residual: UnsafePointer<Float>?
    public var output: UnsafeMutablePointer<Float>
    public var words: UnsafeMutablePointer<Int32>
    public var columnScales: UnsafeMutablePointer<Float>, inverse: UnsafeMutablePointer<Float>
    /// Quad mode only: zero-point corrections per output (`QuadGemmWeights`).
    public var rowOffsets: UnsafePointer<Int32>? = nil
    /// Planes of `output` (and `residual`) are this far apart (default: `planeStride`, the input's and the words').
    public var outputPlaneStride: Int

    public init(input: UnsafePointer<Float>, planeStride: Int, inputs: Int, outputs: Int, weights: UnsafePointer<Int32>,
                rowScales: UnsafePointer<Float>, limit: Float, bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?,
                output: UnsafeMutablePointer<Float>, words: UnsafeMutablePointer<Int32>, columnScales: UnsafeMutablePointer<Float>,
                inverse: UnsafeMutablePointer<Float>) {
        self.input = input; self.planeStride = planeStride; self.inputs = inputs; self.outputs = outputs; self.weights = weights
        self.rowScales = rowScales; self.limit = limit; self.bias = bias; self.residual = residual; self.output = output
        self.words = words; self.columnScales = columnScales; self.inverse = inverse
        outputPlaneStride = planeStride
    }
}

/// Arguments of `KernelSet.softmaxBlock` (see `TransformerKernels.softmaxBlock`).
public struct SoftmaxBlockArgs: @unchecked Sendable {
    public var scores: UnsafeMutablePointer<Float>
    public var planeStride: Int, planes: Int, scale: Float
    public var runningMax: UnsafeMutablePointer<Float>, runningSum: UnsafeMutablePointer<Float>, correction: UnsafeMutablePointer<Float>

    public init(scores: UnsafeMutablePointer<Float>, planeStride: Int, planes: Int, scale: Float, runningMax: UnsafeMutablePointer<Float>,
                runningSum: UnsafeMutablePointer<Float>, correction: UnsafeMutablePointer<Float>) {
        self.scores = scores; self.planeStride = planeStride; self.planes = planes; self.scale = scale
        self.runningMax = runningMax; self.runningSum = runningSum; self.correction = correction
    }
}

/// Arguments of `KernelSet.attendOne` (see `TransformerKernels.attendOne`).
public struct AttendOneArgs: @unchecked Sendable {
    public var query: UnsafePointer<Float>, queryStride: Int
    public var keys: UnsafePointer<Float>, values: UnsafePointer<Float>, keyStride: Int, count: Int
    public var channels: Int, scale: Float
    public var output: UnsafeMutablePointer<Float>, outputStride: Int
    /// Scratch for `count` scores rounded up to 16.
    public var scores: UnsafeMutablePointer<Float>

    public init(query: UnsafePointer<Float>, queryStride: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, keyStride: Int,
                count: Int, channels: Int, scale: Float, output: UnsafeMutablePointer<Float>, outputStride: Int, scores: UnsafeMutablePointer<Float>) {
        self.query = query; self.queryStride = queryStride; self.keys = keys; self.values = values; self.keyStride = keyStride
        self.count = count; self.channels = channels; self.scale = scale; self.output = output; self.outputStride = outputStride
        self.scores = scores
    }
}
