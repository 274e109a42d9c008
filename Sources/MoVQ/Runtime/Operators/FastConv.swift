import Foundation
import MoVQKernelCore

/// A stride-1 convolution (1x1 or 3x3, "same" padding) with weights packed
/// once, run on padded planar maps: 3x3 convolutions between enough
/// channels use Winograd F(2x2, 3x3) (`Winograd`, 16 instead of 36
/// multiply-adds per 2x2 tile; int16 GEMMs when the weights are int8,
/// `WinogradInt16`), the rest the direct planar kernel.
struct FastConv: @unchecked Sendable {
    /// How the convolution is computed.
    enum Algorithm: Sendable { case direct, winograd, winogradInt16 }

    let inChannels: Int, outChannels: Int, kernel: Int
    let algorithm: Algorithm
    /// `PlanarConvWeights.pack` or `WinogradWeights.pack` (empty for `.winogradInt16`).
    let weights: [Float]
    /// `WinogradInt16Weights.pack` for `.winogradInt16`.
    let int16: WinogradInt16Weights.Packed?
    let bias: [Float]
    let zeros: [Float]

    /// `algorithm` nil makes the automatic choice (`choose`).
    init(_ layer: Conv2DLayer, algorithm: Algorithm? = nil) {
        let g = layer.geometry
        precondition(g.stride == 1 && g.padTop == g.kernel / 2)
        inChannels = g.inChannels; outChannels = g.outChannels; kernel = g.kernel
        var chosen = algorithm ?? Self.choose(layer, upsample: false)
        if g.kernel != 3 || (chosen == .winogradInt16 && layer.int8Scales == nil) { chosen = .direct }
        self.algorithm = chosen
        switch chosen {
        case .direct: weights = PlanarConvWeights.pack(layer.weight, outChannels: g.outChannels, inChannels: g.inChannels, kernel: g.kernel)
        case .winograd: weights = WinogradWeights.pack(layer.weight, outChannels: g.outChannels, inChannels: g.inChannels)
        case .winogradInt16: weights = []
        }
        int16 = chosen == .winogradInt16 ? Self.packInt16(layer, upsample: false) : nil
        bias = PlanarConvWeights.packBias(layer.bias, outChannels: g.outChannels)
        zeros = [Float](repeating: 0, count: bias.count)
    }

    /// The automatic choice for a 3x3 convolution with at least 8 input and
    /// output channels: Winograd, in int16 mode when the file stores the
    /// weight as int8; direct otherwise. `RuntimeOptions` can turn the two
    /// off for A/B runs.
    static func choose(_ layer: Conv2DLayer, upsample: Bool) -> Algorithm {
        let g = layer.geometry
        guard winogradShape(inChannels: g.inChannels, outChannels: g.outChannels, kernel: g.kernel) && (winogradEnabled || upsample) else {
            return .direct
        }
        return layer.int8Scales != nil && int16Enabled ? .winogradInt16 : .winograd
    }

    /// Convolutions Winograd serves (also what `decoderFLOPs` counts as executed).
    static func winogradShape(inChannels: Int, outChannels: Int, kernel: Int) -> Bool {
        kernel == 3 && inChannels >= 8 && outChannels >= 8
    }

    /// int8 weights -> the int16 Winograd mode's packed weights.
    static func packInt16(_ layer: Conv2DLayer, upsample: Bool) -> WinogradInt16Weights.Packed? {
        guard let (q, scales) = layer.int8Weights else { return nil }
        return WinogradInt16Weights.pack(q, scales: scales, outChannels: layer.geometry.outChannels,
                                         inChannels: layer.geometry.inChannels, upsample: upsample)
    }

    static var winogradEnabled: Bool { RuntimeOptions.current.winograd }
    static var int16Enabled: Bool { RuntimeOptions.current.int16Winograd }

    /// `output = conv(input) (+ residual)`; all maps have the same size.
    func callAsFunction(_ input: PlanarMap, into output: PlanarMap, residual: PlanarMap? = nil, _ rt: FastRuntime) {
        precondition(input.channels == inChannels && output.channels == outChannels)
        precondition(output.height == input.height && output.width == input.width)
        let flops = 2.0 * Double(inChannels * outChannels * kernel * kernel * input.height * input.width)
        let name = algorithm == .winograd ? "conv3x3 winograd" : algorithm == .winogradInt16 ? "conv3x3 winograd-int16" : "conv\(kernel)x\(kernel)"
        rt.timed("\(name) \(inChannels)->\(outChannels) @\(input.height)x\(input.width)", flops: flops) {
            switch algorithm {
            case .direct: runDirect(input, into: output, residual: residual, rt)
            case .winograd, .winogradInt16: runWinograd(input, into: output, residual: residual, rt)
            }
        }
    }

    private func runDirect(_ input: PlanarMap, into output: PlanarMap, residual: PlanarMap?, _ rt: FastRuntime) {
        let rs = input.rowStride
        weights.withUnsafeBufferPointer { w in
            bias.withUnsafeBufferPointer { b in
                let args = PlanarConvArgs(
                    input: input.base, inputPlaneStride: input.planeStride, rowStride: rs, kernel: kernel,
                    tapOrigin: kernel == 3 ? 0 : rs + 1, weights: w.baseAddress!, bias: b.baseAddress!,
                    inChannels: inChannels, outChannels: outChannels, output: output.base,
                    outputPlaneStride: output.planeStride, outputShift: rs + 1,
                    residual: residual.map { UnsafePointer($0.base) }, positions: input.height * rs)
                rt.gemm(args)
            }
        }
        output.zeroBorders(rt.parallelism)
    }

    private func runWinograd(_ input: PlanarMap, into output: PlanarMap, residual: PlanarMap?, _ rt: FastRuntime) {
        rt.winograd(input, into: output, residual: residual, upsample: false, weights: weights, int16: int16, bias: bias, zeros: zeros)
    }
}

/// Kernel set plus thread policy for the fast path.
struct FastRuntime: Sendable {
    let kernels: KernelSet
    let parallelism: Parallelism
    var profiler: Profiler? = nil
    /// Where operators take scratch memory (a temporary one when nil).
    var workspace: Workspace? = nil
    /// Called after each stage of a decoder or encoder walk with (stage, stages).
    var stageDone: (@Sendable (Int, Int) -> Void)? = nil

    /// Runs `body`, timing it under `name` when profiling.
    func timed(_ name: @autoclosure () -> String, flops: Double = 0, _ body: () -> Void) {
        if let p = profiler { p.record(name(), flops: flops, body) } else { body() }
    }

    /// Runs a planar convolution / GEMM split into tasks of output-channel
    /// groups x position blocks; results do not depend on the split.
    /// Within a task, input channels are taken in blocks so the input slice
    /// (block channels x positions + halo) stays in L2 while every group of
    /// the task reuses it, and each group's weights for the block stay in L1.
    func gemm(_ a: PlanarConvArgs) {
        let chunk = kernels.chunk
        let chunks = (a.positions + chunk - 1) / chunk
        // Position blocks of at least two image rows; input-channel blocks
        // sized so block channels x (positions + halo) fit the L2 budget.
        let halo = a.kernel == 3 ? 2 * a.rowStride + 2 : 0
        let chunksPerBlock = max(1, min(chunks, (max(Self.minPositions, 2 * a.rowStride) + chunk - 1) / chunk))
        let perChannel = chunksPerBlock * chunk + halo
        let inBlock = max(8, min(a.inChannels, Self.l2Budget / 4 / perChannel / 8 * 8))
        let blocks = (chunks + chunksPerBlock - 1) / chunksPerBlock
        let groupsPerBlock = max(1, min(a.groups, 16))
        let groupBlocks = (a.groups + groupsPerBlock - 1) / groupsPerBlock
        let conv = kernels.conv
        parallelism.forEachRange(blocks * groupBlocks) { items in
            for item in items {
                let cb = item / groupBlocks, gb = item % groupBlocks
                let gr = (gb * groupsPerBlock)..<min(a.groups, (gb + 1) * groupsPerBlock)
                let cr = (cb * chunksPerBlock)..<min(chunks, (cb + 1) * chunksPerBlock)
                var i0 = 0
                while i0 < a.inChannels {
                    let i1 = min(a.inChannels, i0 + inBlock)
                    conv(a, gr, cr, i0..<i1)
                    i0 = i1
                }
            }
        }
    }

    /// Runs a Winograd convolution (fp32 `weights`, or `int16` when given)
    /// between planar maps; `upsample` reads the input nearest-2x upsampled.
    func winograd(_ input: PlanarMap, into output: PlanarMap, residual: PlanarMap?, upsample: Bool,
                  weights: [Float], int16: WinogradInt16Weights.Packed?, bias: [Float], zeros: [Float]) {
        let none: [Int32] = []
        weights.withUnsafeBufferPointer { w in bias.withUnsafeBufferPointer { b in zeros.withUnsafeBufferPointer { z in
            (int16?.words ?? none).withUnsafeBufferPointer { qw in (int16?.scales ?? []).withUnsafeBufferPointer { qs in
                let q = int16.map { WinogradInt16Args(weights: qw.baseAddress!, scales: qs.baseAddress!, limit: $0.limit) }
                winograd(WinogradArgs(
                    input: input.base, inputPlaneStride: input.planeStride, rowStride: input.rowStride,
                    height: input.height, width: input.width, weights: w.baseAddress ?? b.baseAddress!, zeros: z.baseAddress!,
                    bias: b.baseAddress!, inChannels: input.channels, outChannels: output.channels, output: output.base,
                    outputPlaneStride: output.planeStride, outputRowStride: output.rowStride, upsample: upsample,
                    residual: residual.map { UnsafePointer($0.base) }, int16: q))
            } }
        } } }
    }

    /// Runs a Winograd convolution in blocks of tiles that go to workers as
    /// they free up, each worker with its own scratch. Only interior pixels
    /// are written, so the output's zero borders stay intact.
    func winograd(_ a: WinogradArgs) {
        let chunk = kernels.chunk, threads = parallelism.threads, tiles = a.tiles
        // Up to 4 GEMM chunks per block, fewer when that would leave workers idle.
        let blockTiles = chunk * max(1, min(4, tiles / (2 * threads * chunk)))
        let blocks = (tiles + blockTiles - 1) / blockTiles
        let per = WinogradScratch.floats(inChannels: a.inChannels, outChannels: a.outChannels,
                                         blockTiles: blockTiles, rowStride: a.rowStride)
        let ws = workspace ?? Workspace()
        let scratch = ws.take(per * min(threads, blocks))
        defer { ws.give(scratch) }
        let run = kernels.winograd, s = UnsafeSendableBox(scratch.baseAddress!)
        parallelism.forEachItem(blocks) { worker, block in
            let lo = block * blockTiles
            run(a, lo..<min(tiles, lo + blockTiles), blockTiles, s.value + worker * per)
        }
    }

    /// Tuning knobs (`RuntimeOptions`; the L2 default, half the core's L2, measured best on Zen 3).
    static let minPositions = RuntimeOptions.current.minPositions
    static let l2Budget = RuntimeOptions.current.l2Budget
}
