import Foundation

/// How close one decoder output is to another (the reference), image by image.
///
/// Both are float tensors `[B, C, H, W]` on the model's [-1, 1] scale, not
/// rounded to 8 bits (so a 60 dB difference is still visible). PSNR and SSIM
/// see pixels as `(x + 1) / 2` without clamping, i.e. a peak of 1 there.
public struct ImageComparison: Sendable, Equatable {
    /// Peak signal-to-noise ratio in dB, `10 log10(1 / MSE)` on the [0, 1] scale; infinity when equal.
    public var psnr: Double
    /// Largest absolute difference on the model's [-1, 1] scale.
    public var maxAbsError: Double
    /// Structural similarity (Wang et al. 2004): 11x11 Gaussian window,
    /// sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, mean over channels
    /// and every window position that fits (a smaller window on tiny images).
    public var ssim: Double

    /// Compares image `index` of `test` with the same image of `reference`.
    public static func compare(_ test: Tensor, _ reference: Tensor, image index: Int) throws -> ImageComparison {
        guard test.shape == reference.shape, test.shape.count == 4, index >= 0, index < test.shape[0] else {
            throw MoVQError.invalidInput("cannot compare outputs of shapes \(test.shape) and \(reference.shape) at image \(index)")
        }
        let c = test.shape[1], h = test.shape[2], w = test.shape[3], n = c * h * w
        var se = 0.0, maxAbs = 0.0
        var ssimSum = 0.0
        test.data.withUnsafeBufferPointer { t in
            reference.data.withUnsafeBufferPointer { r in
                let base = index * n
                for i in base..<(base + n) {
                    let d = Double(t[i]) - Double(r[i])
                    se += d * d / 4  // (x + 1) / 2 halves differences
                    maxAbs = max(maxAbs, abs(d))
                }
                for ch in 0..<c {
                    let off = base + ch * h * w
                    ssimSum += ssim(UnsafeBufferPointer(rebasing: t[off..<(off + h * w)]),
                                    UnsafeBufferPointer(rebasing: r[off..<(off + h * w)]), height: h, width: w)
                }
            }
        }
        let mse = se / Double(n)
        return ImageComparison(psnr: mse == 0 ? .infinity : 10 * log10(1 / mse), maxAbsError: maxAbs, ssim: ssimSum / Double(c))
    }

    /// Mean SSIM of one channel (values on the [-1, 1] scale).
    static func ssim(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeBufferPointer<Float>, height h: Int, width w: Int) -> Double {
        let size = min(11, h, w), sigma = 1.5
        var g = (0..<size).map { i -> Double in let d = Double(i) - Double(size - 1) / 2; return exp(-d * d / (2 * sigma * sigma)) }
        let gs = g.reduce(0, +)
        g = g.map { $0 / gs }
        let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
        @inline(__always) func px(_ p: UnsafeBufferPointer<Float>, _ i: Int) -> Double { (Double(p[i]) + 1) / 2 }
        var total = 0.0
        let rows = h - size + 1, cols = w - size + 1
        for y0 in 0..<rows {
            for x0 in 0..<cols {
                var mx = 0.0, my = 0.0, sxx = 0.0, syy = 0.0, sxy = 0.0
                for ky in 0..<size {
                    for kx in 0..<size {
                        let wgt = g[ky] * g[kx], i = (y0 + ky) * w + x0 + kx
                        let a = px(x, i), b = px(y, i)
                        mx += wgt * a; my += wgt * b; sxx += wgt * a * a; syy += wgt * b * b; sxy += wgt * a * b
                    }
                }
                let vx = sxx - mx * mx, vy = syy - my * my, cxy = sxy - mx * my
                total += ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
            }
        }
        return total / Double(rows * cols)
    }
}
