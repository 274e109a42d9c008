import MoVQKernelCore

/// The encoder on the fast path, layer for layer like `Encoder`.
struct FastEncoder: @unchecked Sendable {
    struct Level { var resnets: [FastResnet]; var attentions: [FastAttention]; var downsample: FastDownsampleConv? }

    let convIn: FastConv
    let levels: [Level]
    let mid0: FastResnet, midAttention: FastAttention?, mid1: FastResnet
    let normOut: FastNorm, convOut: FastConv, quantConv: FastConv

    init(_ e: Encoder) {
        convIn = FastConv(e.convIn)
        levels = e.down.map { l in
            Level(resnets: l.resnets.map(FastResnet.init), attentions: l.attentions.map { FastAttention($0, channels: $0.channels) },
                  downsample: l.downsample.map(FastDownsampleConv.init))
        }
        mid0 = FastResnet(e.mid.resnet0); mid1 = FastResnet(e.mid.resnet1)
        midAttention = e.mid.attention.map { FastAttention($0, channels: $0.channels) }
        normOut = FastNorm(layer: e.normOut); convOut = FastConv(e.convOut); quantConv = FastConv(e.quantConv)
    }

    /// Encodes image `index` of `[B, C, H, W]`; returns `[1, vqEmbedDim, H / f, W / f]`.
    func callAsFunction(_ images: Tensor, image index: Int, _ rt: FastRuntime, _ ws: Workspace) -> Tensor {
        let input = planarMap(from: images, image: index, ws)
        var x = PlanarMap(ws, channels: convIn.outChannels, height: input.height, width: input.width)
        convIn(input, into: x, rt)
        ws.give(input.buffer)
        let stages = levels.count + 1
        for (l, level) in levels.enumerated() {
            for (j, resnet) in level.resnets.enumerated() {
                x = resnet(x, zq: nil, rt, ws)
                if !level.attentions.isEmpty { x = level.attentions[j].consuming(x, zq: nil, rt, ws) }
            }
            if let down = level.downsample {
                let small = PlanarMap(ws, channels: down.outChannels, height: x.height / 2, width: x.width / 2)
                down(x, into: small, rt, ws)
                ws.give(x.buffer)
                x = small
            }
            rt.stageDone?(l + 1, stages)
        }
        x = mid0(x, zq: nil, rt, ws)
        if let a = midAttention { x = a.consuming(x, zq: nil, rt, ws) }
        x = mid1(x, zq: nil, rt, ws)
        let n = PlanarMap(ws, channels: x.channels, height: x.height, width: x.width)
        normOut(x, into: n, zq: nil, silu: true, rt)
        ws.give(x.buffer)
        let z = PlanarMap(ws, channels: convOut.outChannels, height: n.height, width: n.width)
        convOut(n, into: z, rt)
        ws.give(n.buffer)
        let q = PlanarMap(ws, channels: quantConv.outChannels, height: z.height, width: z.width)
        quantConv(z, into: q, rt)
        ws.give(z.buffer)
        defer { ws.give(q.buffer) }
        rt.stageDone?(stages, stages)
        return tensor(from: q)
    }
}
