/// One weight tensor the architecture needs: canonical (diffusers) name and shape.
public struct TensorSpec: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
}

/// The single list of every tensor a config implies, in a fixed order.
/// The converter validates checkpoints against it and the loader builds the
/// runtime model from it, so the two can never disagree.
public func tensorSpecs(for c: MoVQConfig) -> [TensorSpec] {
    var specs: [TensorSpec] = []
    func add(_ name: String, _ shape: [Int]) { specs.append(TensorSpec(name: name, shape: shape)) }
    func conv(_ p: String, _ o: Int, _ i: Int, _ k: Int) { add("\(p).weight", [o, i, k, k]); add("\(p).bias", [o]) }
    func norm(_ p: String, _ ch: Int, spatial: Bool) {
        if spatial {
            add("\(p).norm_layer.weight", [ch]); add("\(p).norm_layer.bias", [ch])
            conv("\(p).conv_y", ch, c.vqEmbedDim, 1); conv("\(p).conv_b", ch, c.vqEmbedDim, 1)
        } else {
            add("\(p).weight", [ch]); add("\(p).bias", [ch])
        }
    }
    func resnet(_ p: String, _ i: Int, _ o: Int, spatial: Bool) {
        norm("\(p).norm1", i, spatial: spatial); conv("\(p).conv1", o, i, 3)
        norm("\(p).norm2", o, spatial: spatial); conv("\(p).conv2", o, o, 3)
        if i != o { conv("\(p).conv_shortcut", o, i, 1) }
    }
    func attention(_ p: String, _ ch: Int, spatial: Bool) {
        norm(spatial ? "\(p).spatial_norm" : "\(p).group_norm", ch, spatial: spatial)
        for proj in ["to_q", "to_k", "to_v", "to_out.0"] { add("\(p).\(proj).weight", [ch, ch]); add("\(p).\(proj).bias", [ch]) }
    }
    func mid(_ p: String, _ ch: Int, spatial: Bool) {
        resnet("\(p).mid_block.resnets.0", ch, ch, spatial: spatial)
        if c.midBlockAttention { attention("\(p).mid_block.attentions.0", ch, spatial: spatial) }
        resnet("\(p).mid_block.resnets.1", ch, ch, spatial: spatial)
    }
    let boc = c.blockOutChannels, levels = boc.count
    if c.hasEncoder {
        conv("encoder.conv_in", boc[0], c.inChannels, 3)
        var prev = boc[0]
        for i in 0..<levels {
            for j in 0..<c.layersPerBlock {
                resnet("encoder.down_blocks.\(i).resnets.\(j)", j == 0 ? prev : boc[i], boc[i], spatial: false)
                if c.encoderAttention[i] { attention("encoder.down_blocks.\(i).attentions.\(j)", boc[i], spatial: false) }
            }
            if i != levels - 1 { conv("encoder.down_blocks.\(i).downsamplers.0.conv", boc[i], boc[i], 3) }
            prev = boc[i]
        }
        mid("encoder", boc[levels - 1], spatial: false)
        norm("encoder.conv_norm_out", boc[levels - 1], spatial: false)
        conv("encoder.conv_out", c.latentChannels, boc[levels - 1], 3)
        conv("quant_conv", c.vqEmbedDim, c.latentChannels, 1)
    }
    if c.hasQuantizer { add("quantize.embedding.weight", [c.numVQEmbeddings, c.codebookDim]) }
    conv("post_quant_conv", c.latentChannels, c.vqEmbedDim, 1)
    let spatial = c.normType == .spatial
    let rev = Array(boc.reversed())
    conv("decoder.conv_in", rev[0], c.latentChannels, 3)
    mid("decoder", rev[0], spatial: spatial)
    for i in 0..<levels {
        let prev = i == 0 ? rev[0] : rev[i - 1]
        for j in 0...c.layersPerBlock {
            resnet("decoder.up_blocks.\(i).resnets.\(j)", j == 0 ? prev : rev[i], rev[i], spatial: spatial)
            if c.decoderAttention[i] { attention("decoder.up_blocks.\(i).attentions.\(j)", rev[i], spatial: spatial) }
        }
        if i != levels - 1 { conv("decoder.up_blocks.\(i).upsamplers.0.conv", rev[i], rev[i], 3) }
    }
    norm("decoder.conv_norm_out", boc[0], spatial: spatial)
    conv("decoder.conv_out", c.outChannels, boc[0], 3)
    return specs
}
