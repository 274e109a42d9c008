import Foundation
import MoVQKernelCore

/// A stride-1 convolution (1x1 or 3x3, "same" padding) with weights packed
/// once, run on padded planar maps: 3x3 convolutions between enough
/// channels use Winograd F(2x2, 3x3) (`Winograd`, 16 instead of 36
/// multiply-adds per 2x2 tile), the rest the direct planar kernel.
struct FastConv: @unchecked Sendable {
    /// How the convolution is computed.
    enum Algorithm: Sendable { case direct, winograd }

    let inChannels: Int, outChannels: Int, kernel: Int
    let algorithm: Algorithm
    /// `PlanarConvWeights.pack` or `WinogradWeights.pack`, per `algorithm`.
    let weights: [Float]
    let bias: [Float]
    let zeros: [Float]

    /// `algorithm` nil makes the automatic choice (`usesWinograd`).
    init(_ layer: Conv2DLayer, algorithm: Algorithm? = nil) {
        let g = layer.geometry
        precondition(g.stride == 1 && g.padTop == g.kernel / 2)
        inChannels = g.inChannels; outChannels = g.outChannels; kernel = g.kernel
        let auto = Self.usesWinograd(inChannels: g.inChannels, outChannels: g.outChannels, kernel: g.kernel)
        self.algorithm = g.kernel == 3 ? (algorithm ?? (auto ? .winograd : .direct)) : .direct
        switch self.algorithm {
        case .direct: weights = PlanarConvWeights.pack(layer.weight, outChannels: g.outChannels, inChannels: g.inChannels, kernel: g.kernel)
        case .winograd: weights = WinogradWeights.pack(layer.weight, outChannels: g.outChannels, inChannels: g.inChannels)
        }
        bias = PlanarConvWeights.packBias(layer.bias, outChannels: g.outChannels)
        zeros = [Float](repeating: 0, count: bias.count)
    }

    /// The automatic choice: Winograd for 3x3 convolutions with at least 8
    /// input and output channels, unless `MOVQ_WINOGRAD=0` (for A/B runs).
    static func usesWinograd(inChannels: Int, outChannels: Int, kernel: Int) -> Bool {
        kernel == 3 && inChannels >= 8 && outChannels >= 8 && winogradEnabled
    }

    static let winogradEnabled = ProcessInfo.processInfo.environment["MOVQ_WINOGRAD"] != "0"

    /// `output = conv(input) (+ residual)`; all maps have the same size.
    func callAsFunction(_ input: PlanarMap, into output: PlanarMap, residual: PlanarMap? = nil, _ rt: FastRuntime) {
        precondition(input.channels == inChannels && output.channels == outChannels)
        precondition(output.height == input.height && output.width == input.width)
        let flops = 2.0 * Double(inChannels * outChannels * kernel * kernel * input.height * input.width)
        let name = algorithm == .winograd ? "conv3x3 winograd" : "conv\(kernel)x\(kernel)"
        rt.timed("\(name) \(inChannels)->\(outChannels) @\(input.height)x\(input.width)", flops: flops) {
            switch algorithm {
            case .direct: runDirect(input, into: output, residual: residual, rt)
            case .winograd: runWinograd(input, into: output, residual: residual, rt)
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
        weights.withUnsafeBufferPointer { w in bias.withUnsafeBufferPointer { b in zeros.withUnsafeBufferPointer { z in
            rt.winograd(WinogradArgs(
                input: input.base, inputPlaneStride: input.planeStride, rowStride: input.rowStride,
                height: input.height, width: input.width, weights: w.baseAddress!, zeros: z.baseAddress!,
                bias: b.baseAddress!, inChannels: inChannels, outChannels: outChannels, output: output.base,
                outputPlaneStride: output.planeStride, outputRowStride: output.rowStride, upsample: false,
                residual: residual.map { UnsafePointer($0.base) }))
        } } }
    }
}

/// Kernel set plus thread policy for the fast path.
struct FastRuntime: Sendable {
    let kernels: KernelSet
    let parallelism: Parallelism
    var profiler: Profiler? = nil
    /// Where operators take scratch memory (a temporary one when nil).
    var workspace: Workspace? = nil

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

    /// Tuning knobs (environment overrides exist for benchmarking only).
    static let minPositions = Int(ProcessInfo.processInfo.environment["MOVQ_POSITIONS"] ?? "") ?? 256
    /// Half the core's L2 (measured best on Zen 3: 256 KB of 512 KB).
    static let l2Budget = Int(ProcessInfo.processInfo.environment["MOVQ_L2"] ?? "") ?? CacheInfo.l2Bytes / 2
}
