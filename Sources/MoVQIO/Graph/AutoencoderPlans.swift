/// The MoVQ / VQGAN autoencoder, described once: the only place its layers
/// are listed (Docs/MOVQ.md walks through the same structure). The decoder
/// and encoder plans, and from them the file's tensor list, come from here.
package enum AutoencoderPlans {
    /// The decoder for one latent of `latentHeight x latentWidth`: z_q
    /// (`vqEmbedDim` channels) -> image (`outChannels`, `downsampleFactor`
    /// times larger). With SCN every norm is conditioned on z_q as it leaves
    /// the quantizer (before post_quant_conv).
    package static func decoder(_ c: MoVQConfig, latentHeight h: Int, latentWidth w: Int) -> ModelPlan {
        if c.architecture == .maskgitVQGAN { return maskgitDecoder(c, latentHeight: h, latentWidth: w) }
        var b = Builder(c, input: .init(channels: c.vqEmbedDim, height: h, width: w, layout: .map))
        let zq = b.plan.input
        let spatial = c.normType == .spatial
        b.condition = spatial ? zq : nil
        let rev = Array(c.blockOutChannels.reversed())
        let postQuant = b.conv("post_quant_conv", c.vqEmbedDim, c.latentChannels, 1)
        let convIn = b.conv("decoder.conv_in", c.latentChannels, rev[0], 3)
        var x = b.apply(convIn, b.apply(postQuant, zq))
        x = b.mid("decoder", rev[0], x, spatial: spatial)
        for i in rev.indices {
            let p = "decoder.up_blocks.\(i)"
            for j in 0...c.layersPerBlock {
                x = b.resnet("\(p).resnets.\(j)", j == 0 ? (i == 0 ? rev[0] : rev[i - 1]) : rev[i], rev[i], x, spatial: spatial)
                if c.decoderAttention[i] { x = b.attention("\(p).attentions.\(j)", rev[i], x, spatial: spatial) }
            }
            if i != rev.count - 1 {
                x = b.upsampleConv(b.conv("\(p).upsamplers.0.conv", rev[i], rev[i], 3), x)
            }
            b.plan.endStage()
        }
        let normOut = b.norm("decoder.conv_norm_out", c.blockOutChannels[0], spatial: spatial)
        let convOut = b.conv("decoder.conv_out", c.blockOutChannels[0], c.outChannels, 3)
        x = b.apply(convOut, b.apply(normOut, x, silu: true))
        b.plan.endStage()
        b.plan.finish(output: x)
        return b.plan
    }

    /// The encoder for one image of `height x width` (multiples of
    /// `downsampleFactor`): image -> pre-quantization latent (after quant_conv).
    package static func encoder(_ c: MoVQConfig, height: Int, width: Int) -> ModelPlan {
        if c.architecture == .maskgitVQGAN { return maskgitEncoder(c, height: height, width: width) }
        var b = Builder(c, input: .init(channels: c.inChannels, height: height, width: width, layout: .map))
        let boc = c.blockOutChannels, top = boc[boc.count - 1]
        var x = b.apply(b.conv("encoder.conv_in", c.inChannels, boc[0], 3), b.plan.input)
        for i in boc.indices {
            let p = "encoder.down_blocks.\(i)"
            for j in 0..<c.layersPerBlock {
                x = b.resnet("\(p).resnets.\(j)", j == 0 ? (i == 0 ? boc[0] : boc[i - 1]) : boc[i], boc[i], x, spatial: false)
                if c.encoderAttention[i] { x = b.attention("\(p).attentions.\(j)", boc[i], x, spatial: false) }
            }
            if i != boc.count - 1 {
                x = b.downsampleConv(b.conv("\(p).downsamplers.0.conv", boc[i], boc[i], 3), x)
            }
            b.plan.endStage()
        }
        x = b.mid("encoder", top, x, spatial: false)
        let normOut = b.norm("encoder.conv_norm_out", top, spatial: false)
        let convOut = b.conv("encoder.conv_out", top, c.latentChannels, 3)
        let quantConv = b.conv("quant_conv", c.latentChannels, c.vqEmbedDim, 1)
        x = b.apply(quantConv, b.apply(convOut, b.apply(normOut, x, silu: true)))
        b.plan.endStage()
        b.plan.finish(output: x)
        return b.plan
    }

    /// The quantizer's codebook `[numVQEmbeddings, codebookDim]`.
    package static func codebook(_ c: MoVQConfig) -> TensorSpec {
        TensorSpec(name: c.architecture == .maskgitVQGAN ? "quantizer.codebook" : "quantize.embedding.weight",
                   shape: [c.numVQEmbeddings, c.codebookDim])
    }

    /// Builds a plan: `conv`/`norm`/... declare weights (in file order, as a
    /// module's constructor would), `apply`/... emit ops (as its forward).
    struct Builder {
        let config: MoVQConfig
        var plan: ModelPlan
        /// z_q for SCN norms (nil: plain GroupNorms).
        var condition: Int? = nil

        init(_ c: MoVQConfig, input: ModelPlan.Value) { config = c; plan = ModelPlan(input: input) }

        // Declarations.

        mutating func conv(_ p: String, _ i: Int, _ o: Int, _ k: Int, bias: Bool = true) -> ConvWeights {
            let w = ConvWeights(prefix: p, inChannels: i, outChannels: o, kernel: k, hasBias: bias)
            plan.declare(w.weightName, w.weightShape)
            if bias { plan.declare(w.biasName, [o]) }
            return w
        }

        mutating func norm(_ p: String, _ ch: Int, spatial: Bool) -> NormWeights {
            var n = NormWeights(prefix: p, channels: ch, groups: spatial ? config.spatialNormGroups : config.normNumGroups,
                                eps: config.normEps, convY: nil, convB: nil)
            if spatial {
                n.convY = ConvWeights(prefix: "\(p).conv_y", inChannels: config.vqEmbedDim, outChannels: ch, kernel: 1)
                n.convB = ConvWeights(prefix: "\(p).conv_b", inChannels: config.vqEmbedDim, outChannels: ch, kernel: 1)
            }
            plan.declare(n.gammaName, [ch]); plan.declare(n.betaName, [ch])
            for m in [n.convY, n.convB].compactMap({ $0 }) { plan.declare(m.weightName, m.weightShape); plan.declare(m.biasName, [ch]) }
            return n
        }

        // Ops.

        mutating func newMap(like x: Int, channels: Int, scale: (Int) -> Int = { $0 }) -> Int {
            let v = plan.values[x]
            return plan.addValue(.init(channels: channels, height: scale(v.height), width: scale(v.width), layout: .map))
        }

        mutating func apply(_ w: ConvWeights, _ x: Int, residual: Int? = nil) -> Int {
            let y = newMap(like: x, channels: w.outChannels)
            plan.emit(.conv(w, input: x, output: y, residual: residual))
            return y
        }

        mutating func upsampleConv(_ w: ConvWeights, _ x: Int) -> Int {
            let y = newMap(like: x, channels: w.outChannels) { 2 * $0 }
            plan.emit(.upsampleConv(w, input: x, output: y))
            return y
        }

        mutating func averagePool(_ x: Int) -> Int {
            let y = newMap(like: x, channels: plan.values[x].channels) { ($0 + 1) / 2 }
            plan.emit(.averagePool(input: x, output: y))
            return y
        }

        mutating func downsampleConv(_ w: ConvWeights, _ x: Int) -> Int {
            let y = newMap(like: x, channels: w.outChannels) { $0 / 2 }
            plan.emit(.downsampleConv(w, input: x, output: y))
            return y
        }

        /// The norm of `x` into `into` (a new map when nil), with SCN maps
        /// computed from the condition first.
        mutating func apply(_ n: NormWeights, _ x: Int, into: Int? = nil, silu: Bool) -> Int {
            var modulation: (scale: Int, shift: Int)? = nil
            if n.convY != nil, let zq = condition {
                let z = plan.values[zq]
                let maps = (0..<2).map { _ in plan.addValue(.init(channels: n.channels, height: z.height, width: z.width, layout: .plain)) }
                plan.emit(.modulation(n, condition: zq, scale: maps[0], shift: maps[1]))
                modulation = (maps[0], maps[1])
            }
            let y = into ?? newMap(like: x, channels: n.channels)
            plan.emit(.groupNorm(n, input: x, output: y, modulation: modulation, silu: silu))
            return y
        }

        /// `shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))))))`.
        mutating func resnet(_ p: String, _ i: Int, _ o: Int, _ x: Int, spatial: Bool) -> Int {
            let norm1 = norm("\(p).norm1", i, spatial: spatial), conv1 = conv("\(p).conv1", i, o, 3)
            let norm2 = norm("\(p).norm2", o, spatial: spatial), conv2 = conv("\(p).conv2", o, o, 3)
            let shortcut = i == o ? nil : conv("\(p).conv_shortcut", i, o, 1)
            let h = apply(conv1, apply(norm1, x, silu: true))
            _ = apply(norm2, h, into: h, silu: true)  // in place: each element is read, then written
            let skip = shortcut.map { apply($0, x) } ?? x
            return apply(conv2, h, residual: skip)
        }

        /// `x + attention(norm(x))`.
        mutating func attention(_ p: String, _ ch: Int, _ x: Int, spatial: Bool) -> Int {
            let n = norm(spatial ? "\(p).spatial_norm" : "\(p).group_norm", ch, spatial: spatial)
            let a = AttentionWeights(prefix: p, channels: ch)
            for proj in AttentionWeights.projections { plan.declare(a.weightName(proj), [ch, ch]); plan.declare(a.biasName(proj), [ch]) }
            let normalized = apply(n, x, silu: false)
            let y = newMap(like: x, channels: ch)
            plan.emit(.attention(a, normalized: normalized, residual: x, output: y))
            return y
        }

        /// Resnet, attention, resnet at the lowest resolution.
        mutating func mid(_ p: String, _ ch: Int, _ x: Int, spatial: Bool) -> Int {
            var h = resnet("\(p).mid_block.resnets.0", ch, ch, x, spatial: spatial)
            if config.midBlockAttention { h = attention("\(p).mid_block.attentions.0", ch, h, spatial: spatial) }
            return resnet("\(p).mid_block.resnets.1", ch, ch, h, spatial: spatial)
        }
    }
}

/// Every tensor a config implies, in file order: the encoder's (when the
/// file has one), the codebook (when it has a quantizer), the decoder's.
/// Derived from the plans, so the converter, the file validation and the
/// runtime can never disagree.
public func tensorSpecs(for c: MoVQConfig) -> [TensorSpec] {
    let f = c.downsampleFactor
    var specs: [TensorSpec] = []
    if c.hasEncoder { specs += AutoencoderPlans.encoder(c, height: f, width: f).weights }
    if c.hasQuantizer { specs.append(AutoencoderPlans.codebook(c)) }
    return specs + AutoencoderPlans.decoder(c, latentHeight: 1, latentWidth: 1).weights
}
