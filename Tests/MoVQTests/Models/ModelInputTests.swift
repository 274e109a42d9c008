import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Bad latents, index maps and sizes are refused from their shapes, before any work or allocation.
final class ModelInputTests: XCTestCase {
    func testBadDecodeInputs() throws {
        let m = try MoVQModel(contentsOf: try packedModelFile().path)
        assertThrows("latent must be [B, 3, h, w]") { try m.decode(latent: Tensor(zeros: [1, 4, 2, 2])) }
        assertThrows("outside the codebook") { try m.decode(indices: IndexMap(shape: [1, 1, 2, 2], values: [0, 1, 19, 2])) }
        assertThrows("outside the codebook") { try m.decode(indices: IndexMap(shape: [1, 1, 1, 1], values: [-1])) }
        assertThrows("indices per position") { try m.decode(indices: IndexMap(shape: [1, 2, 1, 1], values: [0, 0])) }
        assertThrows("NaN") { try m.decode(latent: Tensor(shape: [1, 3, 1, 1], data: [0, .nan, 0])) }
        assertThrows("needs an estimated") { try m.checkDecodeMemory(batch: 1, latentHeight: 100_000, latentWidth: 100_000) }
        assertThrows("multiple of 2") { try m.encode(images: Tensor(zeros: [1, 3, 5, 4])) }
        assertThrows("images must be") { try m.encode(images: Tensor(zeros: [1, 1, 4, 4])) }
    }

    // 9. Inputs whose work would need tens of GB are refused from their shapes.
    func testWorkIsRefusedFromItsShapeBeforeAllocating() throws {
        let m = try MoVQModel(contentsOf: TestPaths.demoModel, memoryLimit: 2 << 30)
        assertThrows("needs an estimated") { try m.checkDecodeMemory(batch: 1, latentHeight: 4096, latentWidth: 4096) }
        assertThrows("needs an estimated") { try m.checkEncodeMemory(batch: 1, height: 8192, width: 8192) }
        XCTAssertNoThrow(try m.checkDecodeMemory(batch: 8, latentHeight: 16, latentWidth: 16))
        // A 16-bit 16384 x 16384 PNG is refused from its header, before inflating.
        let idat = Crafted.chunk("IDAT", [UInt8](repeating: 0, count: 64))
        let deep = Crafted.png([Crafted.ihdr(width: 16384, height: 16384, depth: 16), idat, Crafted.chunk("IEND", [])])
        assertThrows("pixels this reader accepts") { try PNG.decode(deep) }
        // Priors: a guided batch is refused by its estimate.
        let prior = try MaskGITPrior(contentsOf: TestPaths.packageRoot.appendingPathComponent("Sources/MoVQDemo/Resources/demo-prior.mvq").path,
                                     memoryLimit: 64 << 20)
        let c = prior.config
        assertThrows("needs an estimated") {
            try prior.logits(tokens: [Int32](repeating: 0, count: 512 * c.positions * c.channels), classes: [Int](repeating: 0, count: 512))
        }
    }
}
