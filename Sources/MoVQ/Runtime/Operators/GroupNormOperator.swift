import MoVQKernelCore

/// GroupNorm + optional SCN modulation + optional SiLU over a feature map,
/// in two parts the banded executor can also run band by band: the
/// statistics (`accumulate` merges rows into per-channel `Moments`, in row
/// order; `coefficients` merges a group's channels in channel order), and
/// the fused normalize-modulate-SiLU pass over any rows (`apply`). A whole
/// map and the same map in bands give bit-identical results.
struct GroupNormOperator: @unchecked Sendable {
    let gamma: [Float], beta: [Float]
    let groups: Int, eps: Float

    /// SCN maps `[C][height][width]` (the `ModulationOperator`'s), applied
    /// nearest-neighbour over the whole map; the buffers may hold only rows
    /// `firstRow ..< firstRow + rows` of them (what a band reads).
    struct Modulation {
        var scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, height: Int, width: Int
        var firstRow = 0, rows: Int

        init(scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, height: Int, width: Int, firstRow: Int = 0, rows: Int? = nil) {
            self.scale = scale; self.shift = shift; self.height = height; self.width = width
            self.firstRow = firstRow; self.rows = rows ?? height
        }

        /// The rows of `height`-row maps that rows `band` of a `totalHeight`-row map read.
        static func rows(_ band: Range<Int>, height: Int, totalHeight: Int) -> Range<Int> {
            (band.lowerBound * height / totalHeight)..<((band.upperBound - 1) * height / totalHeight + 1)
        }
    }

    /// The per-channel affine the statistics give: `y = x * scale[c] + shift[c]` before SCN and SiLU.
    struct Coefficients { var scale: [Float], shift: [Float] }

    var residentBytes: Int { (gamma.count + beta.count) * 4 }

    /// The whole map: statistics, then the fused pass.
    func callAsFunction(_ x: FeatureMap, into y: FeatureMap, modulation: Modulation?, silu: Bool, _ ctx: ExecutionContext) {
        var moments = [Moments](repeating: Moments(), count: x.channels)
        moments.withUnsafeMutableBufferPointer { Self.accumulate(x, into: $0.baseAddress!, ctx) }
        apply(x, into: y, coefficients(moments), modulation: modulation, firstRow: 0, totalHeight: x.height, silu: silu, ctx)
    }

    /// Merges the interior rows of `x` (a map, or its next band) into the per-channel `moments`.
    static func accumulate(_ x: FeatureMap, into moments: UnsafeMutablePointer<Moments>, _ ctx: ExecutionContext) {
        let k = ctx.kernels, box = UnsafeSendableBox(moments)
        ctx.timed("groupnorm statistics \(x.channels) @\(x.height)x\(x.width)") {
            ctx.parallelism.forEachRange(x.channels, minimumChunk: 4) { range in
                for ch in range { k.accumulateRows(x.plane(ch), x.rowStride, x.height, x.width, box.value + ch) }
            }
        }
    }

    /// Scale and shift per channel from complete per-channel moments.
    func coefficients(_ moments: [Moments]) -> Coefficients {
        let c = gamma.count, cpg = c / groups
        var scale = [Float](repeating: 0, count: c), shift = scale
        for g in 0..<groups {
            var m = Moments()
            for ch in (g * cpg)..<((g + 1) * cpg) { m.merge(count: moments[ch].count, mean: moments[ch].mean, m2: moments[ch].m2) }
            let mean = Float(m.mean), inv = Float(1 / (m.variance + Double(eps)).squareRoot())
            for ch in (g * cpg)..<((g + 1) * cpg) {
                scale[ch] = inv * gamma[ch]
                shift[ch] = beta[ch] - mean * inv * gamma[ch]
            }
        }
        return Coefficients(scale: scale, shift: shift)
    }

    /// `y = silu?(x * scale + shift) [* mod scale + mod shift]` over the rows
    /// of `x` (rows `firstRow ..<` of a map `totalHeight` high); `y` may be `x`.
    func apply(_ x: FeatureMap, into y: FeatureMap, _ co: Coefficients, modulation mod: Modulation?, firstRow: Int, totalHeight: Int,
               silu: Bool, _ ctx: ExecutionContext) {
        ctx.timed("groupnorm\(mod != nil ? "+scn" : "")\(silu ? "+silu" : "") \(x.channels) @\(x.height)x\(x.width)") {
            let scratchSize = 2 * x.width + 3 * 64
            co.scale.withUnsafeBufferPointer { sp in co.shift.withUnsafeBufferPointer { tp in
                var args = NormApplyArgs(
                    input: x.base, output: y.base, planeStride: x.planeStride, rowStride: x.rowStride,
                    height: x.height, width: x.width, scale: sp.baseAddress!, shift: tp.baseAddress!,
                    modScale: mod?.scale, modShift: mod?.shift, modHeight: mod?.height ?? 1, modWidth: mod?.width ?? 1, silu: silu)
                args.firstRow = firstRow; args.totalHeight = totalHeight; args.outputPlaneStride = y.planeStride
                args.modFirstRow = mod?.firstRow ?? 0; args.modRows = mod?.rows ?? 1
                let apply = ctx.kernels.normApply
                ctx.parallelism.forEachRange(x.channels, minimumChunk: 2) { range in
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: scratchSize)
                    defer { scratch.deallocate() }
                    apply(args, range, scratch)
                }
            } }
        }
    }
}
