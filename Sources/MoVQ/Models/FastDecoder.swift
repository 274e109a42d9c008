import MoVQKernelCore

/// The decoder on the fast path: the same layers as `Decoder`, with weights
/// packed once at load for the SIMD kernels and activations in padded planar
/// maps from the planned workspace. Reads like `Decoder.callAsFunction`.
struct FastDecoder: @unchecked Sendable {
    struct Level { var resnets: [FastResnet]; var attentions: [FastAttention]; var upsample: FastUpsampleConv? }

    let config: MoVQConfig
    let postQuantConv: FastConv, convIn: FastConv
    let mid0: FastResnet, midAttention: FastAttention?, mid1: FastResnet
    let levels: [Level]
    let normOut: FastNorm, convOut: FastConv

    init(_ d: Decoder) {
        config = d.config
        postQuantConv = FastConv(d.postQuantConv); convIn = FastConv(d.convIn)
        mid0 = FastResnet(d.mid.resnet0); mid1 = FastResnet(d.mid.resnet1)
        midAttention = d.mid.attention.map { FastAttention($0, channels: $0.channels) }
        levels = d.up.map { l in
            Level(resnets: l.resnets.map(FastResnet.init), attentions: l.attentions.map { FastAttention($0, channels: $0.channels) },
                  upsample: l.upsample.map(FastUpsampleConv.init))
        }
        normOut = FastNorm(layer: d.normOut); convOut = FastConv(d.convOut)
    }

    /// Decodes one image: `zq` is `[1, vqEmbedDim, h, w]`; returns `[1, outChannels, H, W]`.
    func callAsFunction(_ zq: Tensor, _ rt: FastRuntime, _ ws: Workspace) -> Tensor {
        let cond: Tensor? = config.normType == .spatial ? zq : nil
        let latent = planarMap(from: zq, image: 0, ws)
        let post = PlanarMap(ws, channels: postQuantConv.outChannels, height: latent.height, width: latent.width)
        postQuantConv(latent, into: post, rt)
        ws.give(latent.buffer)
        var x = PlanarMap(ws, channels: convIn.outChannels, height: post.height, width: post.width)
        convIn(post, into: x, rt)
        ws.give(post.buffer)
        x = mid0(x, zq: cond, rt, ws)
        if let a = midAttention { x = a.consuming(x, zq: cond, rt, ws) }
        x = mid1(x, zq: cond, rt, ws)
        let stages = levels.count + 1
        for (l, level) in levels.enumerated() {
            for (j, resnet) in level.resnets.enumerated() {
                x = resnet(x, zq: cond, rt, ws)
                if !level.attentions.isEmpty { x = level.attentions[j].consuming(x, zq: cond, rt, ws) }
            }
            if let up = level.upsample {
                let big = PlanarMap(ws, channels: up.outChannels, height: 2 * x.height, width: 2 * x.width)
                up(x, into: big, rt)
                ws.give(x.buffer)
                x = big
            }
            rt.stageDone?(l + 1, stages)
        }
        let n = PlanarMap(ws, channels: x.channels, height: x.height, width: x.width)
        normOut(x, into: n, zq: cond, silu: true, rt)
        ws.give(x.buffer)
        let out = PlanarMap(ws, channels: convOut.outChannels, height: n.height, width: n.width)
        convOut(n, into: out, rt)
        ws.give(n.buffer)
        defer { ws.give(out.buffer) }
        rt.stageDone?(stages, stages)
        return tensor(from: out)
    }
}
