import MoVQKernelCore

/// The decoder on the fast path: the same layers as `Decoder`, with weights
/// packed once at load for the SIMD kernels and activations in padded planar
/// maps from a reusable workspace. Reads like `Decoder.callAsFunction`.
struct FastDecoder: @unchecked Sendable {
    struct Resnet { let norm1: FastNorm, conv1: FastConv, norm2: FastNorm, conv2: FastConv, shortcut: FastConv? }
    struct Level { var resnets: [Resnet]; var attentions: [FastAttention]; var upsample: FastUpsampleConv? }

    let config: MoVQConfig
    let postQuantConv: FastConv, convIn: FastConv
    let mid0: Resnet, midAttention: FastAttention?, mid1: Resnet
    let levels: [Level]
    let normOut: FastNorm, convOut: FastConv

    init(_ d: Decoder) {
        config = d.config
        func resnet(_ r: ResnetBlock) -> Resnet {
            Resnet(norm1: FastNorm(layer: r.norm1), conv1: FastConv(r.conv1), norm2: FastNorm(layer: r.norm2),
                   conv2: FastConv(r.conv2), shortcut: r.shortcut.map(FastConv.init))
        }
        postQuantConv = FastConv(d.postQuantConv); convIn = FastConv(d.convIn)
        mid0 = resnet(d.mid.resnet0); mid1 = resnet(d.mid.resnet1)
        midAttention = d.mid.attention.map { FastAttention($0, channels: $0.channels) }
        levels = d.up.map { l in
            Level(resnets: l.resnets.map(resnet),
                  attentions: l.attentions.map { FastAttention($0, channels: $0.channels) },
                  upsample: l.upsample.map(FastUpsampleConv.init))
        }
        normOut = FastNorm(layer: d.normOut); convOut = FastConv(d.convOut)
    }

    /// Decodes one image: `zq` is `[1, vqEmbedDim, h, w]`; returns `[1, outChannels, H, W]`.
    func callAsFunction(_ zq: Tensor, _ rt: FastRuntime, _ ws: Workspace) -> Tensor {
        let cond: Tensor? = config.normType == .spatial ? zq : nil
        let (h, w) = (zq.shape[2], zq.shape[3])
        let latent = PlanarMap(ws, channels: zq.shape[1], height: h, width: w)
        for c in 0..<zq.shape[1] {
            for y in 0..<h {
                for x in 0..<w { latent.plane(c)[(y + 1) * latent.rowStride + 1 + x] = zq.data[(c * h + y) * w + x] }
            }
        }
        let post = PlanarMap(ws, channels: postQuantConv.outChannels, height: h, width: w)
        postQuantConv(latent, into: post, rt)
        ws.give(latent.buffer)
        var x = PlanarMap(ws, channels: convIn.outChannels, height: h, width: w)
        convIn(post, into: x, rt)
        ws.give(post.buffer)
        x = resnet(mid0, x, cond, rt, ws)
        if let a = midAttention { x = attention(a, x, cond, rt, ws) }
        x = resnet(mid1, x, cond, rt, ws)
        for level in levels {
            for (j, r) in level.resnets.enumerated() {
                x = resnet(r, x, cond, rt, ws)
                if !level.attentions.isEmpty { x = attention(level.attentions[j], x, cond, rt, ws) }
            }
            if let up = level.upsample {
                let big = PlanarMap(ws, channels: up.outChannels, height: 2 * x.height, width: 2 * x.width)
                up(x, into: big, rt, ws)
                ws.give(x.buffer)
                x = big
            }
        }
        let n = PlanarMap(ws, channels: x.channels, height: x.height, width: x.width)
        normOut(x, into: n, zq: cond, silu: true, rt)
        let out = PlanarMap(ws, channels: convOut.outChannels, height: x.height, width: x.width)
        convOut(n, into: out, rt)
        ws.give(n.buffer); ws.give(x.buffer)
        var t = Tensor(zeros: [1, out.channels, out.height, out.width])
        for c in 0..<out.channels {
            for y in 0..<out.height {
                for xx in 0..<out.width { t.data[(c * out.height + y) * out.width + xx] = out.plane(c)[(y + 1) * out.rowStride + 1 + xx] }
            }
        }
        ws.give(out.buffer)
        return t
    }

    func resnet(_ r: Resnet, _ x: PlanarMap, _ zq: Tensor?, _ rt: FastRuntime, _ ws: Workspace) -> PlanarMap {
        let (h, w) = (x.height, x.width)
        let n1 = PlanarMap(ws, channels: x.channels, height: h, width: w)
        r.norm1(x, into: n1, zq: zq, silu: true, rt)
        let h1 = PlanarMap(ws, channels: r.conv1.outChannels, height: h, width: w)
        r.conv1(n1, into: h1, rt)
        ws.give(n1.buffer)  // free before the next map is taken: at most three full maps live at once
        r.norm2(h1, into: h1, zq: zq, silu: true, rt)  // in place: each element is read, then written
        var skip = x
        if let s = r.shortcut {
            skip = PlanarMap(ws, channels: s.outChannels, height: h, width: w)
            s(x, into: skip, rt)
        }
        let out = PlanarMap(ws, channels: r.conv2.outChannels, height: h, width: w)
        r.conv2(h1, into: out, residual: skip, rt)
        ws.give(h1.buffer)
        if r.shortcut != nil { ws.give(skip.buffer) }
        ws.give(x.buffer)
        return out
    }

    func attention(_ a: FastAttention, _ x: PlanarMap, _ zq: Tensor?, _ rt: FastRuntime, _ ws: Workspace) -> PlanarMap {
        let y = PlanarMap(ws, channels: x.channels, height: x.height, width: x.width)
        a(x, into: y, zq: zq, rt, ws)
        ws.give(x.buffer)
        return y
    }
}
