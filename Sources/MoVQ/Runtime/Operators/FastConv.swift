import Foundation
import MoVQKernelCore

/// A stride-1 convolution (1x1 or 3x3, "same" padding) with weights packed
/// once for `PlanarConv`, run on padded planar maps.
struct FastConv: @unchecked Sendable {
    let inChannels: Int, outChannels: Int, kernel: Int
    let weights: [Float]
    let bias: [Float]

    init(_ layer: Conv2DLayer) {
        let g = layer.geometry
        precondition(g.stride == 1 && g.padTop == g.kernel / 2)
        inChannels = g.inChannels; outChannels = g.outChannels; kernel = g.kernel
        weights = PlanarConvWeights.pack(layer.weight, outChannels: g.outChannels, inChannels: g.inChannels, kernel: g.kernel)
        bias = PlanarConvWeights.packBias(layer.bias, outChannels: g.outChannels)
    }

    /// `output = conv(input) (+ residual)`; all maps have the same size.
    func callAsFunction(_ input: PlanarMap, into output: PlanarMap, residual: PlanarMap? = nil, _ rt: FastRuntime) {
        precondition(input.channels == inChannels && output.channels == outChannels)
        let flops = 2.0 * Double(inChannels * outChannels * kernel * kernel * input.height * input.width)
        rt.timed("conv\(kernel)x\(kernel) \(inChannels)->\(outChannels) @\(input.height)x\(input.width)", flops: flops) {
            run(input, into: output, residual: residual, rt)
        }
    }

    private func run(_ input: PlanarMap, into output: PlanarMap, residual: PlanarMap?, _ rt: FastRuntime) {
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
}

/// Kernel set plus thread policy for the fast path.
struct FastRuntime: Sendable {
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

    /// Tuning knobs (environment overrides exist for benchmarking only).
    static let minPositions = Int(ProcessInfo.processInfo.environment["MOVQ_POSITIONS"] ?? "") ?? 256
    /// Half the core's L2 (measured best on Zen 3: 256 KB of 512 KB).
    static let l2Budget = Int(ProcessInfo.processInfo.environment["MOVQ_L2"] ?? "") ?? CacheInfo.l2Bytes / 2
}
