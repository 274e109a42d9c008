import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// One regression test per defect of the untrusted-input audit (issue 10),
/// each made from its description: every input is refused with one line
/// naming the problem, never a crash, a hang or a huge allocation.
final class UntrustedInputTests: XCTestCase {
    func write(_ d: Data, _ name: String) -> String {
        let p = TestPaths.scratch() + "/" + name
        try! d.write(to: URL(fileURLWithPath: p))
        return p
    }
    func write(_ b: [UInt8], _ name: String) -> String { write(Data(b), name) }

    // 1. PNG IHDR whose width * height wraps.
    func testPNGSizeProductCannotWrap() {
        let idat = Crafted.chunk("IDAT", [0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0, 0, 0, 1])
        let huge = Crafted.png([Crafted.ihdr(width: 3_631_363_752, height: 3_809_879_428, colorType: 6), idat, Crafted.chunk("IEND", [])])
        XCTAssertLessThan(huge.count, 70)
        assertThrows("is invalid") { try PNG.decode(huge) }
        let big = Crafted.png([Crafted.ihdr(width: (1 << 31) - 1, height: (1 << 31) - 1, colorType: 6), idat, Crafted.chunk("IEND", [])])
        assertThrows("pixels this reader accepts") { try PNG.decode(big) }
    }

    // 2. Torch views whose offset arithmetic wraps.
    func testTorchStrideArithmeticCannotWrap() {
        let storages: [String: [Float]] = ["0": [1, 2, 3, 4]]
        for (shape, stride, offset) in [([3, 1], [(1 << 62) + (1 << 61), 1], 0), ([2, 2], [Int.max / 2 + 1, 1], 1), ([2], [1], Int.max - 1)] {
            let ckpt = Crafted.torchCheckpoint([.init(name: "w", key: "0", offset: offset, shape: shape, stride: stride)], storages: storages)
            assertThrows("tensor 'w'") { try TorchCheckpoint.read(path: write(ckpt, "s.ckpt")) }
        }
        // The same builder makes a valid checkpoint, strided view included.
        let ok = Crafted.torchCheckpoint([.init(name: "w", key: "0", offset: 1, shape: [2], stride: [2])], storages: storages)
        XCTAssertEqual(try TorchCheckpoint.read(path: write(ok, "ok.ckpt")).first?.values, [2, 4])
    }

    // 3. Deeply nested pickles: refused or flat, never a stack overflow on release.
    func testDeeplyNestedPicklesDoNotOverflowTheStack() {
        let tuples: [UInt8] = [0x80, 2, 0x4E] + [UInt8](repeating: 0x85, count: 50_000) + [0x2E]  // NONE, TUPLE1 x 50k
        let marks: [UInt8] = [0x80, 2] + [UInt8](repeating: 0x28, count: 50_000) + [UInt8](repeating: 0x6C, count: 50_000) + [0x2E]  // nested LISTs
        for p in [tuples, marks] {
            let zip = Crafted.zip([("archive/data.pkl", p)])
            assertThrows("not a state dict") { try TorchCheckpoint.read(path: write(zip, "n.ckpt")) }
        }
    }

    // 4. Broadcast (stride-0) views claiming 2^30 and 2^34 elements of a 4-byte storage.
    func testBroadcastViewsAreRefusedBeforeAllocating() {
        for shape in [[1 << 15, 1 << 15], [1 << 17, 1 << 17]] {
            let ckpt = Crafted.torchCheckpoint([.init(name: "w", key: "0", offset: 0, shape: shape, stride: [0, 0])], storages: ["0": [1]])
            assertThrows("more than its storage") { try TorchCheckpoint.read(path: write(ckpt, "b.ckpt")) }
        }
        // Many views of one storage cannot multiply the file either.
        let views = (0..<64).map { Crafted.TensorView(name: "w\($0)", key: "0", offset: 0, shape: [256], stride: [1]) }
        let ckpt = Crafted.torchCheckpoint(views, storages: ["0": [Float](repeating: 1, count: 256)])
        assertThrows("one element per file byte") { try TorchCheckpoint.read(path: write(ckpt, "v.ckpt")) }
    }

    // 5. Prior config whose height * width wraps to 0.
    func testPriorTokenMapProductCannotWrap() {
        var c = PriorConfig(codes: 16, channels: 1, height: 1 << 32, width: 1 << 32, classes: 2, hidden: 8, heads: 2, layers: 1, mlp: 16)
        assertThrows("absurd token map") { try c.validate() }
        c.height = 1 << 62; c.width = 4
        assertThrows("absurd token map") { try c.validate() }
    }

    func packedModel() throws -> Data {
        let p = TestPaths.scratch() + "/m.mvq"
        try Converter.convert(source: TestPaths.fixture("tiny_vqgan/diffusers"), output: p)
        return try Data(contentsOf: URL(fileURLWithPath: p))
    }

    /// The packed test model with its first tensor's entry edited.
    func editedFirstTensor(_ edit: @escaping (inout [String: Any]) -> Void) throws -> String {
        let d = try Crafted.editPacked(try packedModel()) { h in
            var ts = h["tensors"] as! [[String: Any]]
            edit(&ts[0]); h["tensors"] = ts
        }
        return write(d, "e.mvq")
    }

    // 6. A 2^62-element tensor whose byte count overflows.
    func testPackedTensorByteCountCannotOverflow() throws {
        let p = try editedFirstTensor { t in t["shape"] = [1 << 30, 1 << 30, 4]; t["bytes"] = 0 }
        assertThrows("more than the") { try PackedFile(path: p) }
        // The editor itself keeps files valid.
        XCTAssertNoThrow(try PackedFile(path: try editedFirstTensor { _ in }))
    }

    // 7. Unknown layouts, undefined dtypes and a wrong format field.
    func testPackedLayoutDTypeAndFormatAreChecked() throws {
        assertThrows("layout 'nchw16'") { try PackedFile(path: try self.editedFirstTensor { $0["layout"] = "nchw16" }) }
        for dt in ["f64", "bf16", "u8", "i16", "i32", "i64", "bool"] {
            assertThrows("has dtype \(dt)") { try PackedFile(path: try self.editedFirstTensor { $0["dtype"] = dt }) }
        }
        let d = try Crafted.editPacked(try packedModel()) { $0["format"] = "other-format" }
        assertThrows("format 'other-format'") { try PackedFile(path: write(d, "f.mvq")) }
        let dup = try Crafted.editPacked(try packedModel()) { h in
            var ts = h["tensors"] as! [[String: Any]]; ts[1]["name"] = ts[0]["name"]; h["tensors"] = ts
        }
        assertThrows("duplicate tensor") { try PackedFile(path: write(dup, "d.mvq")) }
    }

    // 8. A valid zip64 checkpoint reads the same as its plain twin; bad CRCs are refused.
    func testZip64CheckpointsAreRead() throws {
        let views: [Crafted.TensorView] = [.init(name: "a", key: "0", offset: 0, shape: [2, 2], stride: [2, 1]),
                                           .init(name: "b", key: "1", offset: 0, shape: [3], stride: [1])]
        let storages: [String: [Float]] = ["0": [1, 2, 3, 4], "1": [5, 6, 7]]
        let plain = try TorchCheckpoint.read(path: write(Crafted.torchCheckpoint(views, storages: storages), "p.ckpt"))
        let z64 = try TorchCheckpoint.read(path: write(Crafted.torchCheckpoint(views, storages: storages, zip64: true), "z.ckpt"))
        XCTAssertEqual(plain.map(\.values), [[1, 2, 3, 4], [5, 6, 7]])
        XCTAssertEqual(z64.map(\.values), plain.map(\.values))
        XCTAssertEqual(z64.map(\.name), ["a", "b"])
        assertThrows("CRC mismatch in zip entry") {
            try TorchCheckpoint.read(path: self.write(Crafted.torchCheckpoint(views, storages: storages, corruptCRC: true), "c.ckpt"))
        }
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
        let prior = try MaskGITPrior(contentsOf: TestPaths.packageRoot.appendingPathComponent("Sources/movq/Resources/demo-prior.mvq").path,
                                     memoryLimit: 64 << 20)
        let c = prior.config
        assertThrows("needs an estimated") {
            try prior.logits(tokens: [Int32](repeating: 0, count: 512 * c.positions * c.channels), classes: [Int](repeating: 0, count: 512))
        }
    }

    // 12. FIFOs (and folders) as model, checkpoint or config paths fail at once.
    func testFIFOsDoNotBlock() throws {
        let fifo = TestPaths.scratch() + "/model.mvq"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertThrows("not a regular file") { try PackedFile(path: fifo) }
        assertThrows("not a regular file") { try MoVQModel(contentsOf: fifo) }
        assertThrows("not a regular file") { try CheckpointImporter.load(path: fifo) }
        assertThrows("not a regular file") { try CheckpointImporter.load(path: TestPaths.fixture("tiny_vqgan/diffusers"), configPath: fifo) }
        assertThrows("not a regular file") { try NPY.read(path: fifo) }
        assertThrows("not a regular file") { try PNG.read(path: fifo) }
        assertThrows("is a folder") { try PackedFile(path: TestPaths.scratch()) }
    }

    // 13. A self-referencing list is representable without a reference cycle.
    func testSelfReferencingListsAreFlat() throws {
        let p: [UInt8] = [0x80, 2, 0x5D, 0x32, 0x61, 0x2E]  // EMPTY_LIST, DUP, APPEND, STOP
        try p.withUnsafeBytes { b in
            var u = RestrictedUnpickler(b, path: "<p>")
            let root = try u.run()
            guard case .list(let l) = u[root] else { return XCTFail("not a list") }
            XCTAssertEqual(u.lists[l], [root])  // the list holds an index to itself, not a strong reference
        }
    }

    // Also accepted though wrong, before.
    func testBadZipPNGAndNPYDetails() throws {
        // PNG: bad Adler-32, methods != 0, IDAT before IHDR.
        let good = [UInt8](PNG.encode(Image8(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])))
        XCTAssertEqual(try PNG.decode(good).pixels, [1, 2, 3, 4, 5, 6])
        // Rebuild the IDAT with a wrong Adler-32 (the chunk CRC stays right).
        let zlib = PNG.zlibStored([0, 1, 2, 3, 0, 4, 5, 6])
        var badAdler = zlib; badAdler[badAdler.count - 1] ^= 1
        let withAdler = { (z: [UInt8]) in Crafted.png([Crafted.ihdr(width: 3, height: 2), Crafted.chunk("IDAT", z), Crafted.chunk("IEND", [])]) }
        XCTAssertEqual(try PNG.decode(withAdler(zlib)).pixels, [1, 2, 3, 4, 5, 6])
        assertThrows("Adler-32") { try PNG.decode(withAdler(badAdler)) }
        let rest = [Crafted.chunk("IDAT", zlib), Crafted.chunk("IEND", [])]
        assertThrows("compression method 1") { try PNG.decode(Crafted.png([Crafted.ihdr(width: 3, height: 2, compression: 1)] + rest)) }
        assertThrows("filter method 2") { try PNG.decode(Crafted.png([Crafted.ihdr(width: 3, height: 2, filter: 2)] + rest)) }
        assertThrows("first chunk is not") { try PNG.decode(Crafted.png([Crafted.chunk("IDAT", zlib), Crafted.ihdr(width: 3, height: 2), Crafted.chunk("IEND", [])])) }
        assertThrows("not consecutive") {
            try PNG.decode(Crafted.png([Crafted.ihdr(width: 3, height: 2), Crafted.chunk("IDAT", Array(zlib[0..<4])), Crafted.chunk("tEXt", [65, 0, 66]),
                                        Crafted.chunk("IDAT", Array(zlib[4...])), Crafted.chunk("IEND", [])]))
        }

        // npy: Fortran order however spelled, unknown versions, bool index maps.
        func npy(_ header: String, major: UInt8 = 1, minor: UInt8 = 0, body: [UInt8]) -> Data {
            var h = Array(header.utf8)
            while (10 + h.count + 1) % 64 != 0 { h.append(0x20) }
            h.append(0x0A)
            var d = Data([0x93] + Array("NUMPY".utf8) + [major, minor])
            d.appendLE(UInt16(h.count)); d.append(contentsOf: h); d.append(contentsOf: body)
            return d
        }
        let four = [UInt8](repeating: 0, count: 16)
        for h in ["{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", "{'descr':'<f4','fortran_order' : True,'shape':(2,2)}",
                  "{'fortran_order': True, 'descr': '<f4', 'shape': (2, 2)}"] {
            assertThrows("Fortran-ordered") { try NPY.read(path: self.write(npy(h, body: four), "f.npy")) }
        }
        XCTAssertEqual(try NPY.read(path: write(npy("{'descr':'<f4','fortran_order':False,'shape':(2,2)}", body: four), "ok.npy")).shape, [2, 2])
        for (major, minor) in [(4, 0), (1, 5), (0, 1)] {
            assertThrows("format version") { try NPY.read(path: self.write(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", major: UInt8(major), minor: UInt8(minor), body: four), "v.npy")) }
        }
        assertThrows("repeats key") { try NPY.read(path: self.write(npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", body: four), "r.npy")) }
        assertThrows("'>f4'") { try NPY.read(path: self.write(npy("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", body: four), "b.npy")) }
        let bools = NPY.encode(shape: [1, 2, 2], descr: "|b1", body: Data([1, 0, 1, 1]))
        XCTAssertEqual(try NPY.read(path: write(bools, "bool.npy")).dtype, .bool)

        // safetensors: overlapping ranges, duplicate keys, holes.
        func st(_ header: String, _ body: Int) -> Data {
            var d = Data(); d.appendLE(UInt64(header.utf8.count)); d.append(Data(header.utf8)); d.append(Data(count: body)); return d
        }
        assertThrows("overlaps") {
            try Safetensors.read(path: self.write(st(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, 12), "o.safetensors"))
        }
        assertThrows("duplicate key 'a'") {
            try Safetensors.read(path: self.write(st(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8), "k.safetensors"))
        }
        assertThrows("hole") {
            try Safetensors.read(path: self.write(st(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8), "h.safetensors"))
        }
        XCTAssertEqual(try Safetensors.read(path: write(st(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"x":"y"}}"#, 8), "g.safetensors")).count, 1)
    }

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
                               m.weightBytes + Double(decodeLayout.bytes) + Double(h * w * f * f * c.outChannels * 13 + h * w * c.vqEmbedDim * 12) + 64e6)
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

/// The environment's tuning switches, parsed in one place.
final class RuntimeOptionsTests: XCTestCase {
    func testEnvironmentParsing() {
        let d = RuntimeOptions(environment: [:])
        XCTAssertEqual([d.winograd, d.int16Winograd, d.quadLinears], [true, true, true])
        XCTAssertNil(d.isa); XCTAssertEqual(d.minPositions, 256)
        let o = RuntimeOptions(environment: ["MOVQ_ISA": "avx2", "MOVQ_WINOGRAD": "0", "MOVQ_INT16": "0", "MOVQ_QUAD": "0",
                                             "MOVQ_POSITIONS": "128", "MOVQ_L2": "bogus"])
        XCTAssertEqual(o.isa, "avx2")
        XCTAssertEqual([o.winograd, o.int16Winograd, o.quadLinears], [false, false, false])
        XCTAssertEqual(o.minPositions, 128); XCTAssertEqual(o.l2Budget, d.l2Budget)
        XCTAssertTrue(o.description.contains("winograd=off"), o.description)
    }
}
