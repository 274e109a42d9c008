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
    /// (shorter rows leave black cells).
    public static func grid(_ rows: [[Image8]]) -> Image8 {
        let w = rows[0][0].width, h = rows[0][0].height, c = rows[0][0].channels
        let cols = rows.map(\.count).max() ?? 0
        var px = [UInt8](repeating: 0, count: cols * w * rows.count * h * c)
        for (r, row) in rows.enumerated() {
            for (col, img) in row.enumerated() {
                for y in 0..<h {
                    for x in 0..<w {
                        for ch in 0..<c {
                            px[(((r * h + y) * cols * w) + col * w + x) * c + ch] = img.pixels[(y * w + x) * img.channels + min(ch, img.channels - 1)]
                        }
                    }
                }
            }
        }
        return Image8(width: cols * w, height: rows.count * h, channels: c, pixels: px)
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
