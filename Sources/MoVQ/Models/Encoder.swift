/// The encoder: image in [-1, 1] -> pre-quantization latent (after quant_conv).
struct Encoder: @unchecked Sendable {
    struct DownLevel { var resnets: [ResnetBlock]; var attentions: [AttentionBlock]; var downsample: Conv2DLayer? }

    let convIn: Conv2DLayer
    let down: [DownLevel]
    let mid: MidBlock
    let normOut: NormLayer
    let convOut: Conv2DLayer
    let quantConv: Conv2DLayer

    init(config c: MoVQConfig, _ w: WeightLookup) throws {
        let boc = c.blockOutChannels
        convIn = try Conv2DLayer("encoder.conv_in", Conv2DGeometry(inChannels: c.inChannels, outChannels: boc[0], kernel: 3), w)
        var levels: [DownLevel] = []
        var prev = boc[0]
        for i in boc.indices {
            var level = DownLevel(resnets: [], attentions: [], downsample: nil)
            let p = "encoder.down_blocks.\(i)"
            for j in 0..<c.layersPerBlock {
                level.resnets.append(try ResnetBlock("\(p).resnets.\(j)", in: j == 0 ? prev : boc[i], out: boc[i], spatial: false, config: c, w))
                if c.encoderAttention[i] {
                    level.attentions.append(try AttentionBlock("\(p).attentions.\(j)", channels: boc[i], spatial: false, config: c, w))
                }
            }
            if i != boc.count - 1 {
                level.downsample = try Conv2DLayer("\(p).downsamplers.0.conv", .downsample(channels: boc[i]), w)
            }
            levels.append(level)
            prev = boc[i]
        }
        down = levels
        let top = boc[boc.count - 1]
        mid = try MidBlock("encoder", channels: top, spatial: false, config: c, w)
        normOut = try NormLayer("encoder.conv_norm_out", channels: top, spatial: false, config: c, w)
        convOut = try Conv2DLayer("encoder.conv_out", Conv2DGeometry(inChannels: top, outChannels: c.latentChannels, kernel: 3), w)
        quantConv = try Conv2DLayer("quant_conv", Conv2DGeometry(inChannels: c.latentChannels, outChannels: c.vqEmbedDim, kernel: 1), w)
    }

    /// `[B, inChannels, H, W]` -> `[B, vqEmbedDim, H / f, W / f]`.
    func callAsFunction(_ image: Tensor, _ ctx: ExecutionContext) -> Tensor {
        var x = convIn(image, ctx)
        for level in down {
            for (j, resnet) in level.resnets.enumerated() {
                x = resnet(x, zq: nil, ctx)
                if !level.attentions.isEmpty { x = level.attentions[j](x, zq: nil, ctx) }
            }
            if let conv = level.downsample { x = conv(x, ctx) }
        }
        x = mid(x, zq: nil, ctx)
        x = normOut(x, zq: nil, silu: true, ctx)
        return quantConv(convOut(x, ctx), ctx)
    }
}
