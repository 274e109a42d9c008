/// Floating-point operations of one decoder pass (multiply-add = 2 FLOPs),
/// counted from the config: convolutions (including SCN's 1x1 convs at
/// latent resolution) and attention matmuls. Norms and activations are
/// memory-bound and not counted.
///
/// By default convolutions count as direct convolutions (the usual
/// "model FLOPs"). With `executed`, they count the multiply-adds the fast
/// path performs: Winograd F(2x2, 3x3) does 16 per 2x2 tile instead of 36,
/// and the upsample convolutions 9 per input pixel.
public func decoderFLOPs(_ c: MoVQConfig, latentHeight h: Int, latentWidth w: Int, executed: Bool = false) -> Double {
    var flops = 0.0
    var (hh, ww) = (h, w)
    func conv(_ i: Int, _ o: Int, _ k: Int, upsampled: Bool = false) {
        let direct = 2 * Double(i * o * k * k * hh * ww)
        if executed && upsampled {
            flops += direct / 4
        } else if executed && FastConv.winogradShape(inChannels: i, outChannels: o, kernel: k) && FastConv.winogradEnabled {
            let tiles = ((hh + 1) / 2) * ((ww + 1) / 2)
            flops += 2 * Double(i * o * 16 * tiles)
        } else {
            flops += direct
        }
    }
    func norm(_ ch: Int) { if c.normType == .spatial { flops += 2 * 2 * Double(c.vqEmbedDim * ch * h * w) } }
    func resnet(_ i: Int, _ o: Int) { norm(i); conv(i, o, 3); norm(o); conv(o, o, 3); if i != o { conv(i, o, 1) } }
    func attention(_ ch: Int) { norm(ch); let n = Double(hh * ww); flops += 8 * Double(ch * ch) * n + 4 * n * n * Double(ch) }
    let rev = Array(c.blockOutChannels.reversed())
    conv(c.vqEmbedDim, c.latentChannels, 1)
    conv(c.latentChannels, rev[0], 3)
    resnet(rev[0], rev[0]); if c.midBlockAttention { attention(rev[0]) }; resnet(rev[0], rev[0])
    for i in rev.indices {
        for j in 0...c.layersPerBlock {
            resnet(j == 0 ? (i == 0 ? rev[0] : rev[i - 1]) : rev[i], rev[i])
            if c.decoderAttention[i] { attention(rev[i]) }
        }
        if i != rev.count - 1 { hh *= 2; ww *= 2; conv(rev[i], rev[i], 3, upsampled: true) }
    }
    norm(c.blockOutChannels[0])
    conv(c.blockOutChannels[0], c.outChannels, 3)
    return flops
}
