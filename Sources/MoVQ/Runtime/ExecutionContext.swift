import MoVQKernelCore

/// What the SIMD operators run with: the kernel tier, the threads and an
/// optional profiler. It schedules the two heavy loops (planar GEMM and
/// Winograd) over the threads, always in output-disjoint tasks, so results
/// do not depend on the thread count.
struct ExecutionContext: Sendable {
    let kernels: KernelSet
    let parallelism: Parallelism
    var profiler: Profiler? = nil

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
    /// of `input` into `output`; `scratch` holds `winogradScratchFloats` floats.
    func winograd(_ input: FeatureMap, into output: FeatureMap, residual: FeatureMap?, upsample: Bool,
                  weights: WeightPanel, int16: Int16WinogradPanel?, bias: [Float], zeros: [Float], scratch: UnsafeMutablePointer<Float>) {
        weights.withUnsafeBufferPointer { w in bias.withUnsafeBufferPointer { b in zeros.withUnsafeBufferPointer { z in
            (int16?.words ?? .empty).withUnsafeBufferPointer { qw in (int16?.scales ?? []).withUnsafeBufferPointer { qs in
            (int16?.offsets ?? []).withUnsafeBufferPointer { qo in
                let q = int16.map { WinogradInt16Args(weights: qw.baseAddress!, scales: qs.baseAddress!, limit: $0.limit, scaleStride: $0.scaleStride,
                                                      offsets: $0.offsets != nil ? qo.baseAddress : nil) }
                winograd(WinogradArgs(
                    input: input.base, inputPlaneStride: input.planeStride, rowStride: input.rowStride,
                    height: input.height, width: input.width, weights: w.baseAddress ?? b.baseAddress!, zeros: z.baseAddress!,
                    bias: b.baseAddress!, inChannels: input.channels, outChannels: output.channels, output: output.base,
                    outputPlaneStride: output.planeStride, outputRowStride: output.rowStride, upsample: upsample,
                    residual: residual.map { UnsafePointer($0.base) }, residualPlaneStride: residual?.planeStride, int16: q), scratch: scratch)
            } } }
        } } }
    }

    /// How a Winograd convolution of `tiles` tiles is split: tiles per block
    /// (up to 4 GEMM chunks, fewer when that would leave workers idle), blocks,
    /// and the workers that get scratch.
    func winogradBlocks(tiles: Int) -> (blockTiles: Int, blocks: Int, workers: Int) {
        let chunk = kernels.chunk, threads = parallelism.threads
        let blockTiles = chunk * max(1, min(4, tiles / (2 * threads * chunk)))
        let blocks = (tiles + blockTiles - 1) / blockTiles
        return (blockTiles, blocks, min(threads, blocks))
    }

    /// Scratch floats `winograd` needs for a convolution of `input` (with
    /// `outChannels` outputs; `upsample`: one tile per input pixel).
    func winogradScratchFloats(inChannels: Int, outChannels: Int, height: Int, width: Int, upsample: Bool) -> Int {
        let tiles = upsample ? height * width : ((height + 1) / 2) * ((width + 1) / 2)
        let s = winogradBlocks(tiles: tiles)
        let per = WinogradScratch.floats(inChannels: inChannels, outChannels: outChannels, blockTiles: s.blockTiles, rowStride: width + 2)
        return per * s.workers
    }

    /// Runs a Winograd convolution in blocks of tiles that go to workers as
    /// they free up, each worker with its own part of `scratch`. Only
    /// interior pixels are written, so the output's zero borders stay intact.
    func winograd(_ a: WinogradArgs, scratch: UnsafeMutablePointer<Float>) {
        let tiles = a.tiles, s = winogradBlocks(tiles: tiles)
        let per = WinogradScratch.floats(inChannels: a.inChannels, outChannels: a.outChannels, blockTiles: s.blockTiles, rowStride: a.rowStride)
        let run = a.int16?.offsets != nil ? kernels.quadWinograd! : kernels.winograd, box = UnsafeSendableBox(scratch), blockTiles = s.blockTiles
        parallelism.forEachItem(s.blocks) { worker, block in
            let lo = block * blockTiles
            run(a, lo..<min(tiles, lo + blockTiles), blockTiles, box.value + worker * per)
        }
    }

    /// Tuning knobs (`RuntimeOptions`; the L2 default, half the core's L2, measured best on Zen 3).
    static let minPositions = RuntimeOptions.current.minPositions
    static let l2Budget = RuntimeOptions.current.l2Budget
}
