/// The MoVQ decoder: z_q -> image in [-1, 1], read top to bottom as in
/// Docs/MOVQ.md. Every norm is conditioned on z_q as it leaves the quantizer
/// (before post_quant_conv) when the norm type is spatial.
struct Decoder: @unchecked Sendable {
    struct UpLevel { var resnets: [ResnetBlock]; var attentions: [AttentionBlock]; var upsample: Conv2DLayer? }

    let config: MoVQConfig
    let postQuantConv: Conv2DLayer
    let convIn: Conv2DLayer
    let mid: MidBlock
    let up: [UpLevel]
    let normOut: NormLayer
    let convOut: Conv2DLayer

    init(config c: MoVQConfig, _ w: WeightLookup) throws {
        config = c
        let spatial = c.normType == .spatial
        let rev = Array(c.blockOutChannels.reversed())
        postQuantConv = try Conv2DLayer("post_quant_conv", Conv2DGeometry(inChannels: c.vqEmbedDim, outChannels: c.latentChannels, kernel: 1), w)
        convIn = try Conv2DLayer("decoder.conv_in", Conv2DGeometry(inChannels: c.latentChannels, outChannels: rev[0], kernel: 3), w)
        mid = try MidBlock("decoder", channels: rev[0], spatial: spatial, config: c, w)
        var levels: [UpLevel] = []
        for i in rev.indices {
            let prev = i == 0 ? rev[0] : rev[i - 1]
            var level = UpLevel(resnets: [], attentions: [], upsample: nil)
            for j in 0...c.layersPerBlock {
                let p = "decoder.up_blocks.\(i)"
                level.resnets.append(try ResnetBlock("\(p).resnets.\(j)", in: j == 0 ? prev : rev[i], out: rev[i], spatial: spatial, config: c, w))
                if c.decoderAttention[i] {
                    level.attentions.append(try AttentionBlock("\(p).attentions.\(j)", channels: rev[i], spatial: spatial, config: c, w))
                }
            }
            if i != rev.count - 1 {
                level.upsample = try Conv2DLayer("decoder.up_blocks.\(i).upsamplers.0.conv", Conv2DGeometry(inChannels: rev[i], outChannels: rev[i], kernel: 3), w)
            }
            levels.append(level)
        }
        up = levels
        normOut = try NormLayer("decoder.conv_norm_out", channels: c.blockOutChannels[0], spatial: spatial, config: c, w)
        convOut = try Conv2DLayer("decoder.conv_out", Conv2DGeometry(inChannels: c.blockOutChannels[0], outChannels: c.outChannels, kernel: 3), w)
    }

    /// `zq`: `[B, vqEmbedDim, h, w]` -> `[B, outChannels, h * f, w * f]`.
    func callAsFunction(_ zq: Tensor, _ ctx: ExecutionContext) -> Tensor {
        let cond: Tensor? = config.normType == .spatial ? zq : nil
        var x = convIn(postQuantConv(zq, ctx), ctx)
        x = mid(x, zq: cond, ctx)
        for level in up {
            for (j, resnet) in level.resnets.enumerated() {
                x = resnet(x, zq: cond, ctx)
                if !level.attentions.isEmpty { x = level.attentions[j](x, zq: cond, ctx) }
            }
            if let conv = level.upsample { x = conv(UpsampleReference.nearest2x(x), ctx) }
        }
        x = normOut(x, zq: cond, silu: true, ctx)
        return convOut(x, ctx)
    }
}
