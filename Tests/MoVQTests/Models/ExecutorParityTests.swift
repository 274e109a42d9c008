import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The two executors over the same plans: the SIMD decoder and encoder on
/// every tier against the reference executor and PyTorch, independent of
/// the thread count.
final class ExecutorParityTests: XCTestCase {
    var tiers: [KernelTier] { KernelTier.available }

    func random(_ n: Int, seed: UInt64) -> [Float] {
        var s = seed &+ 0x9E37_79B9_7F4A_7C15
        return (0..<n).map { _ in
            s = s &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int((s >> 33) % 2001) - 1000) / 1000
        }
    }

    /// `source` converted with kernel layouts (the default) and with plain ones (what the reference backend reads).
    func convertBothLayouts(_ source: String) throws -> (kernel: String, plain: String) {
        let dir = TestPaths.scratch()
        try Converter.convert(source: TestPaths.fixture(source), output: dir + "/m.mvq")
        try Converter.convert(source: TestPaths.fixture(source), output: dir + "/m-plain.mvq", layout: .plain)
        return (dir + "/m.mvq", dir + "/m-plain.mvq")
    }

    func testKernelLayoutFilesRefuseThePlainReaders() throws {
        let (path, plain) = try convertBothLayouts("tiny_vqgan/diffusers")
        let file = try PackedFile(path: path)
        // Every weight a kernel reads is stored in its layout; planar6 reads back exactly, Winograd does not.
        let layouts = Set(file.header.tensors.map(\.layout))
        XCTAssertEqual(layouts, ["plain", "planar6", "winograd6", "winograd6-upsample"])
        let planar = try XCTUnwrap(file.header.tensors.first { $0.layout == "planar6" })
        XCTAssertEqual(try file.floatArray(planar.name, shape: planar.shape), try PackedFile(path: plain).floatArray(planar.name, shape: planar.shape))
        let z = try Tensor(shape: [1, 3, 2, 2], data: random(12, seed: 4))
        assertThrows("--layout plain") { try MoVQModel(contentsOf: path, backend: .reference).decode(latent: z) }
        XCTAssertNoThrow(try MoVQModel(contentsOf: plain, backend: .reference).decode(latent: z))
        assertThrows("--layout plain") { try Converter.convert(source: path, output: TestPaths.scratch() + "/x.mvq", precision: .int8) }
        XCTAssertNoThrow(try Converter.convert(source: plain, output: TestPaths.scratch() + "/y.mvq", precision: .int8))
    }

    func testInt8KernelLayoutMatchesPlainAndRefusesThePlainReaders() throws {
        for source in ["tiny_vqgan/diffusers", "tiny_movq/original.ckpt"] {
            let d = TestPaths.scratch()
            try Converter.convert(source: TestPaths.fixture(source), output: d + "/k.mvq", precision: .int8)
            try Converter.convert(source: TestPaths.fixture(source), output: d + "/p.mvq", precision: .int8, layout: .plain)
            let file = try PackedFile(path: d + "/k.mvq")
            XCTAssertTrue(file.header.tensors.contains { $0.layout == "winograd6-s8" && $0.dtype == .i8 }, source)
            XCTAssertTrue(file.header.tensors.contains { $0.layout == "winograd6-upsample-s8" }, source)
            let name = source.split(separator: "/")[0]
            let z = try loadTensor(TestPaths.fixture("\(name)/latent.npy"))
            for k in tiers {
                // The s8 words read in place give what packing the int8 values at load gives, bit for bit.
                XCTAssertEqual(try MoVQModel(contentsOf: d + "/k.mvq", backend: .simd(k)).decode(latent: z, threads: 2),
                               try MoVQModel(contentsOf: d + "/p.mvq", backend: .simd(k)).decode(latent: z, threads: 2), "\(source) \(k.name)")
            }
            // The s8 requantization is rounded: the reference backend and re-conversion need the plain file.
            assertThrows("--layout plain") { try MoVQModel(contentsOf: d + "/k.mvq", backend: .reference).decode(latent: z) }
            assertThrows("--layout plain") { try Converter.convert(source: d + "/k.mvq", output: d + "/back.mvq", precision: .int8, layout: .plain) }
            XCTAssertNoThrow(try MoVQModel(contentsOf: d + "/p.mvq", backend: .reference).decode(latent: z))
        }
    }

    func testSIMDDecoderMatchesReferenceAndIsThreadIndependent() throws {
        for source in ["tiny_movq/diffusers", "tiny_vqgan/diffusers", "tiny_multichannel/original.ckpt"] {
            let (path, plain) = try convertBothLayouts(source)
            let name = source.split(separator: "/")[0]
            let z = try loadTensor(TestPaths.fixture("\(name)/latent.npy"))
            let ref = try MoVQModel(contentsOf: plain, backend: .reference).decode(latent: z)
            for k in tiers {
                let m = try MoVQModel(contentsOf: path, backend: .simd(k))
                let one = try m.decode(latent: z, threads: 1)
                // Kernel-layout weights read in place compute what plain weights packed at load do, bit for bit.
                XCTAssertEqual(one, try MoVQModel(contentsOf: plain, backend: .simd(k)).decode(latent: z, threads: 1), "\(source) \(k.name) layouts")
                assertParity(one, ref, "\(source) \(k.name)")
                assertParity(one, try loadTensor(TestPaths.fixture("\(name)/decoded_latent.npy")), "\(source) \(k.name) vs PyTorch")
                XCTAssertEqual(one, try m.decode(latent: z, threads: 2), "\(k.name) threads")
                XCTAssertEqual(one, try m.decode(latent: z, threads: 5), "\(k.name) threads")
                let z1 = try loadTensor(TestPaths.fixture("\(name)/latent_1x1.npy"))
                assertParity(try m.decode(latent: z1), try loadTensor(TestPaths.fixture("\(name)/decoded_1x1.npy")), "\(source) \(k.name) 1x1")
            }
        }
    }

    func testSIMDEncoderMatchesReferenceOnEveryTier() throws {
        for source in ["tiny_movq/original.ckpt", "tiny_vqgan/diffusers", "tiny_multichannel/original.ckpt"] {
            let (path, plain) = try convertBothLayouts(source)
            let name = source.split(separator: "/")[0]
            let x = try loadTensor(TestPaths.fixture("\(name)/image.npy"))
            let ref = try MoVQModel(contentsOf: plain, backend: .reference).encode(images: x)
            for k in tiers {
                let m = try MoVQModel(contentsOf: path, backend: .simd(k))
                let z = try m.encode(images: x, threads: 3)
                XCTAssertEqual(z, try MoVQModel(contentsOf: plain, backend: .simd(k)).encode(images: x, threads: 3), "\(source) \(k.name) layouts")
                assertParity(z, ref, "\(source) \(k.name) encoder")
                assertParity(z, try loadTensor(TestPaths.fixture("\(name)/latent.npy")), "\(source) \(k.name) encoder vs PyTorch")
                XCTAssertEqual(z, try m.encode(images: x, threads: 1))
            }
        }
    }

    func testAttentionWithManyQueryBlocks() throws {
        // 24x24 latent = 576 tokens: three query blocks, the last one partial.
        let (path, plain) = try convertBothLayouts("tiny_vqgan/diffusers")
        let z = try Tensor(shape: [1, 3, 24, 24], data: random(3 * 576, seed: 9))
        let ref = try MoVQModel(contentsOf: plain, backend: .reference).decode(latent: z, threads: 2)
        for k in tiers {
            assertParity(try MoVQModel(contentsOf: path, backend: .simd(k)).decode(latent: z, threads: 2), ref, k.name)
        }
    }
}
