import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The Swift runtime against PyTorch/diffusers reference outputs
/// (Tools/fixtures/make_fixtures.py): decoder on latents and index maps, encoder,
/// quantizer, both checkpoint layouts, batch 2, odd shapes.
final class FixtureParityTests: XCTestCase {
    static let cases: [(name: String, source: String)] = [
        ("tiny_movq", "tiny_movq/diffusers"),
        ("tiny_movq", "tiny_movq/original.ckpt"),
        ("tiny_vqgan", "tiny_vqgan/diffusers"),
        ("tiny_multichannel", "tiny_multichannel/original.ckpt"),
    ]

    func convert(_ source: String) throws -> MoVQModel {
        let out = TestPaths.scratch() + "/model.mvq"
        try Converter.convert(source: TestPaths.fixture(source), output: out)
        return try MoVQModel(contentsOf: out)
    }

    func testDecoderMatchesReferenceOnLatents() throws {
        for c in Self.cases {
            let m = try convert(c.source)
            let z = try loadTensor(TestPaths.fixture("\(c.name)/latent.npy"))
            XCTAssertEqual(z.shape[0], 2)
            assertParity(try m.decode(latent: z, threads: 2), try loadTensor(TestPaths.fixture("\(c.name)/decoded_latent.npy")), "\(c.source) latent")
            let z1 = try loadTensor(TestPaths.fixture("\(c.name)/latent_1x1.npy"))
            assertParity(try m.decode(latent: z1, threads: 2), try loadTensor(TestPaths.fixture("\(c.name)/decoded_1x1.npy")), "\(c.source) 1x1 latent")
        }
    }

    func testDecoderMatchesReferenceOnIndices() throws {
        for c in Self.cases {
            let m = try convert(c.source)
            let idx = try loadIndices(TestPaths.fixture("\(c.name)/indices.npy"))
            assertParity(try m.decode(indices: idx, threads: 2), try loadTensor(TestPaths.fixture("\(c.name)/decoded_indices.npy")), "\(c.source) indices")
        }
    }

    func testEncoderAndQuantizerMatchReference() throws {
        for c in Self.cases {
            let m = try convert(c.source)
            let x = try loadTensor(TestPaths.fixture("\(c.name)/image.npy"))
            let z = try m.encode(images: x, threads: 2)
            let want = try loadTensor(TestPaths.fixture("\(c.name)/latent.npy"))
            assertParity(z, want, "\(c.source) encoder")
            // Quantize the reference latent so index parity does not depend on encoder rounding.
            let idx = try m.quantize(latent: want)
            XCTAssertEqual(idx, try loadIndices(TestPaths.fixture("\(c.name)/indices.npy")), "\(c.source) indices")
            XCTAssertEqual(idx.shape[1], m.config.channelsPerPosition)
        }
    }

    func testQuantizedLatentDecodesLikeItsIndices() throws {
        let m = try convert("tiny_multichannel/original.ckpt")
        let z = try loadTensor(TestPaths.fixture("tiny_multichannel/latent.npy"))
        XCTAssertEqual(m.config.channelsPerPosition, 2)
        let a = try m.decode(latent: z, quantize: true)
        let b = try m.decode(indices: try m.quantize(latent: z))
        XCTAssertEqual(a, b)
    }

    func testOutputDoesNotDependOnThreadCount() throws {
        let m = try convert("tiny_movq/original.ckpt")
        let z = try loadTensor(TestPaths.fixture("tiny_movq/latent.npy"))
        let x = try loadTensor(TestPaths.fixture("tiny_movq/image.npy"))
        let one = try m.decode(latent: z, threads: 1)
        for t in [2, 3, 8] {
            XCTAssertEqual(one, try m.decode(latent: z, threads: t), "decode with \(t) threads")
        }
        XCTAssertEqual(try m.encode(images: x, threads: 1), try m.encode(images: x, threads: 2))
    }

    func testBothLayoutsGiveTheSameWeights() throws {
        let a = try CheckpointImporter.load(path: TestPaths.fixture("tiny_movq/diffusers"))
        let b = try CheckpointImporter.load(path: TestPaths.fixture("tiny_movq/original.ckpt"))
        XCTAssertEqual(a.config, b.config)
        XCTAssertEqual(a.layout, "diffusers")
        XCTAssertEqual(b.layout, "original")
        XCTAssertEqual(b.dropped, ["loss.discriminator.main.0.weight"])
        XCTAssertEqual(a.tensors.map(\.name), b.tensors.map(\.name))
        for (x, y) in zip(a.tensors, b.tensors) {
            XCTAssertEqual(x.shape, y.shape, x.name)
            XCTAssertEqual(x.values, y.values, x.name)
        }
    }

    func testInferredArchitecture() throws {
        let v = try CheckpointImporter.load(path: TestPaths.fixture("tiny_vqgan/diffusers")).config
        XCTAssertEqual(v.blockOutChannels, [24, 40])
        XCTAssertEqual(v.normType, .group)
        XCTAssertEqual(v.normNumGroups, 8)  // from config.json
        XCTAssertEqual(v.encoderAttention, [false, true])
        XCTAssertEqual(v.decoderAttention, [true, false])
        let m = try CheckpointImporter.load(path: TestPaths.fixture("tiny_multichannel/original.ckpt")).config
        XCTAssertEqual(m.blockOutChannels, [32, 32, 64])
        XCTAssertEqual(m.codebookDim, 2)
        XCTAssertEqual(m.channelsPerPosition, 2)
        XCTAssertEqual(m.numVQEmbeddings, 29)
        XCTAssertEqual(m.downsampleFactor, 4)
    }

    func testConversionIsDeterministic() throws {
        let d = TestPaths.scratch()
        try Converter.convert(source: TestPaths.fixture("tiny_vqgan/diffusers"), output: d + "/a.mvq")
        try Converter.convert(source: TestPaths.fixture("tiny_vqgan/diffusers"), output: d + "/b.mvq")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: d + "/a.mvq")), try Data(contentsOf: URL(fileURLWithPath: d + "/b.mvq")))
    }

    func testFP16ModelStaysClose() throws {
        let d = TestPaths.scratch()
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: d + "/h.mvq", precision: .fp16)
        try Converter.convert(source: TestPaths.fixture("tiny_movq/diffusers"), output: d + "/f.mvq")
        let h = try MoVQModel(contentsOf: d + "/h.mvq"), f = try MoVQModel(contentsOf: d + "/f.mvq")
        XCTAssertLessThan(h.file.fileSize, f.file.fileSize * 6 / 10)
        let z = try loadTensor(TestPaths.fixture("tiny_movq/latent.npy"))
        let (e, s) = maxAbsError(try h.decode(latent: z), try f.decode(latent: z))
        XCTAssertLessThan(e, 1e-2 * s)
    }
}
