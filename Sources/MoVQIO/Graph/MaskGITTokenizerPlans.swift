/// The official MaskGIT tokenizer (google-research/maskgit
/// `nets/vqgan_tokenizer.py`), described once: the only place its layers
/// are listed. Weight names are the flax parameter paths joined with "."
/// (`kernel`/`scale` become `weight`), so a checkpoint maps on by name.
///
/// As the official code computes it:
/// - a resnet is `conv(swish(gn(conv(swish(gn(x))))))` with bias-free 3x3
///   convs; when the width changes, the residual is a bias-free 1x1 conv of
///   that *output* (`Conv_2`), not of the input, and no input skip is added;
/// - the encoder downsamples with a 2x2 average pool, the decoder upsamples
///   nearest 2x, then a 3x3 conv (with bias);
/// - no quant / post-quant convs; images are in [0, 1].
extension AutoencoderPlans {
    /// Codes `[embed, h, w]` -> image `[3, h * f, w * f]`.
    static func maskgitDecoder(_ c: MoVQConfig, latentHeight h: Int, latentWidth w: Int) -> ModelPlan {
        var b = Builder(c, input: .init(channels: c.vqEmbedDim, height: h, width: w, layout: .map))
        let ch = c.blockOutChannels, levels = ch.count
        var convs = 0, resnets = 0
        func nextConv() -> String { defer { convs += 1 }; return "decoder.Conv_\(convs)" }
        func resnet(_ i: Int, _ o: Int, _ x: Int) -> Int {
            defer { resnets += 1 }
            return b.maskgitResnet("decoder.ResBlock_\(resnets)", i, o, x)
        }
        var x = b.apply(b.conv(nextConv(), c.vqEmbedDim, ch[levels - 1], 3), b.plan.input)
        for _ in 0..<c.layersPerBlock { x = resnet(ch[levels - 1], ch[levels - 1], x) }
        var width = ch[levels - 1]
        for i in (0..<levels).reversed() {
            for _ in 0..<c.layersPerBlock { x = resnet(width, ch[i], x); width = ch[i] }
            if i > 0 { x = b.upsampleConv(b.conv(nextConv(), width, width, 3), x) }
            b.plan.endStage()
        }
        let norm = b.norm("decoder.GroupNorm_0", width, spatial: false)
        x = b.apply(b.conv(nextConv(), width, c.outChannels, 3), b.apply(norm, x, silu: true))
        b.plan.endStage()
        b.plan.finish(output: x)
        return b.plan
    }

    /// Image `[3, h, w]` (multiples of f) -> latent `[embed, h / f, w / f]` before quantization.
    static func maskgitEncoder(_ c: MoVQConfig, height: Int, width: Int) -> ModelPlan {
        var b = Builder(c, input: .init(channels: c.inChannels, height: height, width: width, layout: .map))
        let ch = c.blockOutChannels, levels = ch.count
        var resnets = 0
        func resnet(_ i: Int, _ o: Int, _ x: Int) -> Int {
            defer { resnets += 1 }
            return b.maskgitResnet("encoder.ResBlock_\(resnets)", i, o, x)
        }
        var x = b.apply(b.conv("encoder.Conv_0", c.inChannels, ch[0], 3, bias: false), b.plan.input)
        var width = ch[0]
        for i in 0..<levels {
            for _ in 0..<c.layersPerBlock { x = resnet(width, ch[i], x); width = ch[i] }
            if i < levels - 1 { x = b.averagePool(x) }
            b.plan.endStage()
        }
        for _ in 0..<c.layersPerBlock { x = resnet(width, width, x) }
        let norm = b.norm("encoder.GroupNorm_0", width, spatial: false)
        x = b.apply(b.conv("encoder.Conv_1", width, c.vqEmbedDim, 1), b.apply(norm, x, silu: true))
        b.plan.endStage()
        b.plan.finish(output: x)
        return b.plan
    }
}

extension AutoencoderPlans.Builder {
    /// The official resnet: `h = Conv_1(swish(GroupNorm_1(Conv_0(swish(GroupNorm_0(x))))))`, then
    /// `h + x` when the width stays, `h + Conv_2(h)` (1x1) when it changes.
    mutating func maskgitResnet(_ p: String, _ i: Int, _ o: Int, _ x: Int) -> Int {
        let norm0 = norm("\(p).GroupNorm_0", i, spatial: false), conv0 = conv("\(p).Conv_0", i, o, 3, bias: false)
        let norm1 = norm("\(p).GroupNorm_1", o, spatial: false), conv1 = conv("\(p).Conv_1", o, o, 3, bias: false)
        let shortcut = i == o ? nil : conv("\(p).Conv_2", o, o, 1, bias: false)
        let h = apply(conv0, apply(norm0, x, silu: true))
        _ = apply(norm1, h, into: h, silu: true)  // in place
        guard let shortcut else { return apply(conv1, h, residual: x) }
        let y = apply(conv1, h)
        return apply(shortcut, y, residual: y)
    }
}
