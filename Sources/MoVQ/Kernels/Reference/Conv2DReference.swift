/// Geometry of a 2-D convolution (NCHW activations, OIHW weights).
struct Conv2DGeometry: Sendable, Equatable {
    var inChannels: Int
    var outChannels: Int
    var kernel: Int
    var stride: Int = 1
    /// Zero padding per side: top, left, bottom, right.
    var padTop: Int, padLeft: Int, padBottom: Int, padRight: Int

    /// A square kernel with symmetric "same" padding (k / 2 each side).
    init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride
        let p = kernel / 2
        padTop = p; padLeft = p; padBottom = p; padRight = p
    }

    /// The encoder's downsampling conv: pad right/bottom by 1, 3x3 stride 2.
    static func downsample(channels: Int) -> Conv2DGeometry {
        var g = Conv2DGeometry(inChannels: channels, outChannels: channels, kernel: 3, stride: 2)
        g.padTop = 0; g.padLeft = 0; g.padBottom = 1; g.padRight = 1
        return g
    }

    /// Output height and width for an input of `h` x `w`.
    func outputSize(h: Int, w: Int) -> (h: Int, w: Int) {
        ((h + padTop + padBottom - kernel) / stride + 1, (w + padLeft + padRight - kernel) / stride + 1)
    }

}

/// The simple, obviously-correct direct convolution every fast kernel is
/// tested against. Parallel over (image, output channel) planes; each output
/// is accumulated in the fixed order bias, then input channel, ky, kx.
enum Conv2DReference {
    /// `y = conv(x, w) + b (+ residual)`; `x` is `[B, Cin, H, W]`.
    static func forward(
        _ x: Tensor, weight: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?,
        geometry g: Conv2DGeometry, residual: Tensor? = nil, parallelism: Parallelism
    ) -> Tensor {
        let b = x.shape[0], h = x.shape[2], w = x.shape[3]
        precondition(x.shape[1] == g.inChannels && weight.count == g.outChannels * g.inChannels * g.kernel * g.kernel)
        let (oh, ow) = g.outputSize(h: h, w: w)
        var y = Tensor(zeros: [b, g.outChannels, oh, ow])
        if let r = residual { precondition(r.shape == y.shape) }
        let k = g.kernel, s = g.stride
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in
                let xb = UnsafeSendableBox(xp.baseAddress!), yb = UnsafeSendableBox(yp.baseAddress!)
                parallelism.forEachRange(b * g.outChannels) { planes in
                    for plane in planes {
                        let n = plane / g.outChannels, oc = plane % g.outChannels
                        let out = yb.value + plane * oh * ow
                        let bv = bias?[oc] ?? 0
                        for i in 0..<(oh * ow) { out[i] = bv }
                        for ic in 0..<g.inChannels {
                            let inp = xb.value + (n * g.inChannels + ic) * h * w
                            for ky in 0..<k {
                                for kx in 0..<k {
                                    let wv = weight[((oc * g.inChannels + ic) * k + ky) * k + kx]
                                    // Output columns whose input column lies inside the image.
                                    let oxLo = max(0, (g.padLeft - kx + s - 1) / s)
                                    let last = w - 1 + g.padLeft - kx  // floor division below needs it >= 0
                                    let oxHi = last < 0 ? 0 : min(ow, last / s + 1)
                                    if oxLo >= oxHi { continue }
                                    for oy in 0..<oh {
                                        let iy = oy * s + ky - g.padTop
                                        if iy < 0 || iy >= h { continue }
                                        let row = inp + iy * w + kx - g.padLeft
                                        let orow = out + oy * ow
                                        if s == 1 {
                                            for ox in oxLo..<oxHi { orow[ox] += wv * row[ox] }
                                        } else {
                                            for ox in oxLo..<oxHi { orow[ox] += wv * row[ox * s] }
                                        }
                                    }
                                }
                            }
                        }
                        if let r = residual {
                            r.data.withUnsafeBufferPointer { rp in
                                let rr = rp.baseAddress! + plane * oh * ow
                                for i in 0..<(oh * ow) { out[i] += rr[i] }
                            }
                        }
                    }
                }
            }
        }
        return y
    }
}
