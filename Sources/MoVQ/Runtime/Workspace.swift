/// Reusable 64-byte aligned float buffers for one decode at a time. Buffers
/// are recycled best-fit; when none fits, the free (smaller) ones are released
/// before allocating, so the memory held tracks the largest set of maps alive
/// at once rather than the sum over all resolutions.
final class Workspace: @unchecked Sendable {
    private var free: [UnsafeMutableBufferPointer<Float>] = []
    private var all: [UnsafeMutableBufferPointer<Float>] = []

    /// A zero-filled buffer of at least `count` floats.
    func take(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        if let i = free.indices.filter({ free[$0].count >= count }).min(by: { free[$0].count < free[$1].count }) {
            let b = free.remove(at: i)
            b.baseAddress!.update(repeating: 0, count: b.count)
            return b
        }
        // Nothing free is large enough: the computation moved to a larger
        // resolution, so return the smaller free buffers to the system first.
        for b in free { UnsafeMutableRawPointer(b.baseAddress!).deallocate(); all.removeAll { $0.baseAddress == b.baseAddress } }
        free.removeAll()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 64)
        let b = UnsafeMutableBufferPointer(start: raw.bindMemory(to: Float.self, capacity: count), count: count)
        b.baseAddress!.initialize(repeating: 0, count: count)
        all.append(b)
        return b
    }

    func give(_ b: UnsafeMutableBufferPointer<Float>) { free.append(b) }

    /// Bytes currently held.
    var bytes: Int { all.reduce(0) { $0 + $1.count * 4 } }

    deinit { for b in all { UnsafeMutableRawPointer(b.baseAddress!).deallocate() } }
}

/// One image's activations in the padded planar layout: `channels` planes of
/// `(height + 2) x rowStride` floats (`rowStride = width + 2`), zero border,
/// first interior pixel at `rowStride + 1`, plus slack after each plane for
/// the vector kernels' overrun.
struct PlanarMap {
    var buffer: UnsafeMutableBufferPointer<Float>
    let channels: Int, height: Int, width: Int

    var rowStride: Int { width + 2 }
    var planeStride: Int { PlanarMap.planeStride(height: height, width: width) }
    var base: UnsafeMutablePointer<Float> { buffer.baseAddress! }

    static let slack = 128
    static func planeStride(height: Int, width: Int) -> Int { ((height + 2) * (width + 2) + slack + 15) / 16 * 16 }
    static func floats(channels: Int, height: Int, width: Int) -> Int { channels * planeStride(height: height, width: width) }

    init(_ ws: Workspace, channels: Int, height: Int, width: Int) {
        self.channels = channels; self.height = height; self.width = width
        buffer = ws.take(PlanarMap.floats(channels: channels, height: height, width: width))
    }

    func plane(_ c: Int) -> UnsafeMutablePointer<Float> { base + c * planeStride }

    /// Zeroes the border columns, the bottom border row and the slack (where
    /// the convolution writes garbage) for every plane.
    func zeroBorders(_ par: Parallelism) {
        let (h, rs, ps) = (height, rowStride, planeStride)
        par.forEachRange(channels, minimumChunk: 16) { range in
            for c in range {
                let p = base + c * ps
                for y in 1...h { p[y * rs] = 0; p[y * rs + rs - 1] = 0 }
                (p + (h + 1) * rs).update(repeating: 0, count: ps - (h + 1) * rs)
            }
        }
    }
}
