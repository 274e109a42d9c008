import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The activation arena: planned from the plan's lifetimes, exactly what the memory estimates use.
final class ActivationArenaTests: XCTestCase {
    /// The memory estimates use the very arena layout a decode and an encode
    /// allocate (planned from the plan's lifetimes before running), and no
    /// two buffers alive at once share memory in it.
    func testMemoryEstimatesAreThePlannedArena() throws {
        let tiny = TestPaths.scratch() + "/t.mvq"
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: tiny)
        for path in [TestPaths.demoModel, tiny] {
            let m = try MoVQModel(contentsOf: path)
            let c = m.config, f = c.downsampleFactor
            for (h, w) in [(8, 8), (5, 12), (16, 3)] {
                var rng = SeededGenerator(seed: 1)
                let z = try Tensor(shape: [1, c.vqEmbedDim, h, w], data: (0..<(c.vqEmbedDim * h * w)).map { _ in Float.random(in: -1...1, using: &rng) })
                let images = try m.decode(latent: z, threads: 2)
                let decodePlan = AutoencoderPlans.decoder(c, latentHeight: h, latentWidth: w)
                let decodeLayout = m.decoder!.layout(decodePlan, threads: 2)
                XCTAssertEqual(m.decoder!.arenaBytes, decodeLayout.bytes, "\(path) decode \(h)x\(w)")
                XCTAssertFalse(decodeLayout.overlaps, "\(path) decode \(h)x\(w)")
                XCTAssertEqual(m.estimatedDecodeBytes(batch: 1, latentHeight: h, latentWidth: w, threads: 2),
                               m.weightBytes(running: m.decoder!) + Double(decodeLayout.bytes) + Double(h * w * f * f * c.outChannels * 13 + h * w * c.vqEmbedDim * 12) + 64e6)
                _ = try m.encode(images: images, threads: 2)
                let encodeLayout = m.encoder!.layout(AutoencoderPlans.encoder(c, height: h * f, width: w * f), threads: 2)
                XCTAssertEqual(m.encoder!.arenaBytes, encodeLayout.bytes, "\(path) encode \(h * f)x\(w * f)")
                XCTAssertFalse(encodeLayout.overlaps, "\(path) encode")
                // The arena is smaller than keeping every value alive.
                XCTAssertLessThan(decodeLayout.bytes, SIMDExecutor.valueFloats(decodePlan).reduce(0, +) * 4)
            }
        }
    }
}
