/// Conversions between 8-bit images and the model's [-1, 1] float tensors.
public enum ImageConversion {
    /// Stacks images into `[B, channels, H, W]` with `v / 127.5 - 1`.
    /// Grey images are replicated to 3 channels; alpha is dropped.
    public static func tensor(from images: [Image8], channels: Int) throws -> Tensor {
        guard let first = images.first else { throw MoVQError.invalidInput("no images") }
        let (w, h) = (first.width, first.height)
        var t = Tensor(zeros: [images.count, channels, h, w])
        for (n, img) in images.enumerated() {
            guard img.width == w, img.height == h else {
                throw MoVQError.invalidInput("all images must have the same size (\(w)x\(h)), got \(img.width)x\(img.height)")
            }
            for c in 0..<channels {
                let src = img.channels == 1 ? 0 : min(c, 2)
                guard img.channels != 1 || channels <= 3 else { throw MoVQError.invalidInput("grey image for a \(channels)-channel model") }
                for p in 0..<(w * h) {
                    t.data[(n * channels + c) * w * h + p] = Float(img.pixels[p * img.channels + src]) / 127.5 - 1
                }
            }
        }
        return t
    }

    /// `clamp((x + 1) / 2, 0, 1) * 255`, rounded, for each image of `[B, C, H, W]`
    /// (C = 1 gives grey, C = 3 RGB; other channel counts keep the first 3).
    public static func images(from t: Tensor) -> [Image8] {
        let b = t.shape[0], c = t.shape[1], h = t.shape[2], w = t.shape[3]
        let oc = c >= 3 ? 3 : 1
        return (0..<b).map { n in
            var px = [UInt8](repeating: 0, count: w * h * oc)
            for ch in 0..<oc {
                for p in 0..<(w * h) {
                    px[p * oc + ch] = quantize8(t.data[(n * c + ch) * w * h + p])
                }
            }
            return Image8(width: w, height: h, channels: oc, pixels: px)
        }
    }

    @inline(__always) static func quantize8(_ x: Float) -> UInt8 {
        let v = min(max((x + 1) / 2, 0), 1) * 255
        return UInt8(v.rounded(.toNearestOrEven))
    }

    /// Tiles equally sized images into a grid, one row per inner array
    /// (shorter rows leave background cells), with `padding` pixels of
    /// `background` around and between the cells.
    public static func grid(_ rows: [[Image8]], padding: Int = 0, background: UInt8 = 255) -> Image8 {
        let w = rows[0][0].width, h = rows[0][0].height, c = rows[0][0].channels
        let cols = rows.map(\.count).max() ?? 0
        let gw = cols * (w + padding) + padding, gh = rows.count * (h + padding) + padding
        var px = [UInt8](repeating: background, count: gw * gh * c)
        for (r, row) in rows.enumerated() {
            for (col, img) in row.enumerated() {
                let x0 = padding + col * (w + padding), y0 = padding + r * (h + padding)
                for y in 0..<h {
                    for x in 0..<w {
                        for ch in 0..<c {
                            px[((y0 + y) * gw + x0 + x) * c + ch] = img.pixels[(y * w + x) * img.channels + min(ch, img.channels - 1)]
                        }
                    }
                }
            }
        }
        return Image8(width: gw, height: gh, channels: c, pixels: px)
    }

    /// The centered `width x height` part of `img` (each at most the image's).
    public static func centerCropped(_ img: Image8, width: Int, height: Int) -> Image8 {
        let w = min(width, img.width), h = min(height, img.height)
        let x0 = (img.width - w) / 2, y0 = (img.height - h) / 2, c = img.channels
        var px = [UInt8](repeating: 0, count: w * h * c)
        for y in 0..<h {
            let src = ((y0 + y) * img.width + x0) * c
            px.replaceSubrange((y * w * c)..<((y + 1) * w * c), with: img.pixels[src..<(src + w * c)])
        }
        return Image8(width: w, height: h, channels: c, pixels: px)
    }

    /// `img` resampled to `width x height` with a triangle (bilinear)
    /// filter widened by the scale factor when shrinking, so downscaling
    /// averages instead of aliasing (as PIL's BILINEAR does).
    public static func resized(_ img: Image8, width: Int, height: Int) -> Image8 {
        /// Per output index: first input index and normalized weights.
        func taps(_ inSize: Int, _ outSize: Int) -> [(Int, [Float])] {
            let scale = Float(inSize) / Float(outSize), support = max(1, scale)
            return (0..<outSize).map { o in
                let center = (Float(o) + 0.5) * scale
                let lo = max(0, Int((center - support).rounded(.down))), hi = min(inSize, Int((center + support).rounded(.up)))
                var w = (lo..<hi).map { i in max(0, 1 - abs((Float(i) + 0.5 - center) / support)) }
                let sum = w.reduce(0, +)
                w = sum > 0 ? w.map { $0 / sum } : w
                return (lo, w)
            }
        }
        let c = img.channels, xs = taps(img.width, width), ys = taps(img.height, height)
        var rows = [Float](repeating: 0, count: img.height * width * c)  // horizontal pass
        for y in 0..<img.height {
            for (x, (lo, w)) in xs.enumerated() {
                for ch in 0..<c {
                    var acc: Float = 0
                    for (k, wk) in w.enumerated() { acc += wk * Float(img.pixels[(y * img.width + lo + k) * c + ch]) }
                    rows[(y * width + x) * c + ch] = acc
                }
            }
        }
        var px = [UInt8](repeating: 0, count: width * height * c)
        for (y, (lo, w)) in ys.enumerated() {
            for x in 0..<width {
                for ch in 0..<c {
                    var acc: Float = 0
                    for (k, wk) in w.enumerated() { acc += wk * rows[((lo + k) * width + x) * c + ch] }
                    px[(y * width + x) * c + ch] = UInt8(min(255, max(0, acc.rounded())))
                }
            }
        }
        return Image8(width: width, height: height, channels: c, pixels: px)
    }

    /// Peak signal-to-noise ratio in dB between two 8-bit images of equal size
    /// (the first 3 channels). Infinity for identical images.
    public static func psnr(_ a: Image8, _ b: Image8) -> Double {
        let c = min(a.channels, b.channels, 3)
        var se = 0.0
        for p in 0..<(a.width * a.height) {
            for ch in 0..<c {
                let d = Double(a.pixels[p * a.channels + min(ch, a.channels - 1)]) - Double(b.pixels[p * b.channels + min(ch, b.channels - 1)])
                se += d * d
            }
        }
        let mse = se / Double(a.width * a.height * c)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }
}

import Foundation
