import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The official MaskGIT flax checkpoints (structure of google-research/maskgit),
/// as random-weight models made by Tools/fixtures/make_maskgit_flax_fixtures.py,
/// against JAX's outputs: tokenizer decode and encode, transformer logits at
/// sequences 17 and 1025, on every tier and thread count.
final class MaskGITFlaxTests: XCTestCase {
    static func fixture(_ name: String) -> String { TestPaths.fixture("maskgit_flax/\(name)") }

    /// The tiny tokenizer uses 8 GroupNorm groups (the official one flax's default 32).
    static func convertTokenizer(precision: Precision = .fp32, layout: LayoutChoice = .kernel) throws -> String {
        let dir = TestPaths.scratch(), config = dir + "/groups.json"
        try Data(#"{"norm_num_groups": 8}"#.utf8).write(to: URL(fileURLWithPath: config))
        let out = dir + "/tokenizer.mvq"
        try Converter.convertAny(source: fixture("tokenizer_checkpoint"), output: out, precision: precision, layout: layout, configPath: config)
        return out
    }

    static func convertTransformer(_ name: String, precision: Precision = .fp32) throws -> String {
        let dir = TestPaths.scratch(), config = dir + "/codes.json"
        try Data(#"{"codes": 40}"#.utf8).write(to: URL(fileURLWithPath: config))
        let out = dir + "/\(name).mvq"
        try Converter.convertAny(source: fixture("\(name)_checkpoint"), output: out, precision: precision, configPath: config)
        return out
    }

    /// JAX's decoder output is in [0, 1]; the API's images are in [-1, 1].
    func expectedDecoded() throws -> Tensor {
        var t = try loadTensor(Self.fixture("tokenizer_decoded.npy"))
        for i in t.data.indices { t.data[i] = 2 * t.data[i] - 1 }
        return t
    }

    func testTokenizerArchitectureIsReadFromTheTree() throws {
        let m = try MoVQModel(contentsOf: try Self.convertTokenizer())
        XCTAssertEqual(m.config.architecture, .maskgitVQGAN)
        XCTAssertEqual(m.config.blockOutChannels, [16, 16, 32])
        XCTAssertEqual(m.config.layersPerBlock, 2)
        XCTAssertEqual(m.config.numVQEmbeddings, 40)
        XCTAssertEqual(m.config.vqEmbedDim, 8)
        XCTAssertTrue(m.config.hasEncoder)
        XCTAssertEqual(m.config.downsampleFactor, 4)
    }

    /// Every tier against JAX; within a tier the output is the same for any
    /// thread count and either weight layout, bit for bit.
    func testTokenizerDecodeMatchesJAXOnEveryTier() throws {
        let ids = try loadIndices(Self.fixture("tokenizer_ids.npy")), want = try expectedDecoded()
        let kernel = try Self.convertTokenizer(layout: .kernel), plain = try Self.convertTokenizer(layout: .plain)
        assertParity(try MoVQModel(contentsOf: plain, backend: .reference).decode(indices: ids), want, "tokenizer decode reference")
        for k in KernelTier.available {
            let m = try MoVQModel(contentsOf: kernel, backend: .simd(k))
            let one = try m.decode(indices: ids, threads: 1)
            assertParity(one, want, "tokenizer decode \(k.name)")
            XCTAssertEqual(one, try m.decode(indices: ids, threads: 3), "\(k.name): thread count changed the output")
            XCTAssertEqual(one, try MoVQModel(contentsOf: plain, backend: .simd(k)).decode(indices: ids, threads: 2), "\(k.name): layouts differ")
        }
    }

    func testTokenizerEncodeMatchesJAX() throws {
        var image = try loadTensor(Self.fixture("tokenizer_image.npy"))
        for i in image.data.indices { image.data[i] = 2 * image.data[i] - 1 }
        let want = try loadTensor(Self.fixture("tokenizer_latent.npy"))
        let wantIDs = try loadIndices(Self.fixture("tokenizer_encoded_ids.npy"))
        let path = try Self.convertTokenizer(layout: .plain)
        for backend in [Backend.reference] + KernelTier.available.map { Backend.simd($0) } {
            let m = try MoVQModel(contentsOf: path, backend: backend)
            let z = try m.encode(images: image, threads: 2)
            assertParity(z, want, "tokenizer encode \(backend.name)")
            XCTAssertEqual(try m.quantize(latent: z).values, wantIDs.values, "\(backend.name): encoded indices")
            if case .simd = backend { XCTAssertEqual(z, try m.encode(images: image, threads: 1), "\(backend.name): thread count changed the latent") }
        }
    }

    func testTransformerLogitsMatchJAX() throws {
        for name in ["transformer", "transformer_1025"] {
            let path = try Self.convertTransformer(name)
            let tokens = try NPY.read(path: Self.fixture("\(name)_tokens.npy")).values.map { Int32($0) }
            let classes = try NPY.read(path: Self.fixture("\(name)_classes.npy")).values.map { Int($0) }
            let want = try NPY.read(path: Self.fixture("\(name)_logits.npy")).values.map { Float($0) }
            let file = try PackedFile(path: path)
            XCTAssertEqual(file.header.prior?.classes, 10)
            XCTAssertEqual(file.header.prior?.positions, name == "transformer" ? 16 : 1024)
            XCTAssertEqual(file.header.metadata["steps"], "12")
            XCTAssertEqual(file.header.metadata["choice_temperature"], "4.5")
            for tier in KernelTier.available {
                let prior = try MaskGITPrior(contentsOf: path, tier: tier)
                let one = try prior.logits(tokens: tokens, classes: classes, threads: 1)
                XCTAssertEqual(one.count, want.count)
                let scale = want.map { abs($0) }.max()!, err = zip(one, want).map { abs($0 - $1) }.max()!
                XCTAssertLessThan(err, 1e-4 * max(1, scale), "\(name) \(tier.name): max abs error \(err) at scale \(scale)")
                XCTAssertEqual(one, try prior.logits(tokens: tokens, classes: classes, threads: 3), "\(name) \(tier.name): thread count changed the logits")
            }
        }
    }

    func testEveryPrecisionConvertsAndRuns() throws {
        let ids = try loadIndices(Self.fixture("tokenizer_ids.npy")), want = try expectedDecoded()
        for p in [Precision.fp16, .int8] {
            let m = try MoVQModel(contentsOf: try Self.convertTokenizer(precision: p))
            let (err, scale) = maxAbsError(try m.decode(indices: ids, threads: 2), want)
            XCTAssertLessThan(err, (p == .fp16 ? 0.01 : 0.1) * max(1, scale), "tokenizer \(p): max abs error \(err)")
            let prior = try MaskGITPrior(contentsOf: try Self.convertTransformer("transformer", precision: p))
            let tokens = try NPY.read(path: Self.fixture("transformer_tokens.npy")).values.map { Int32($0) }
            let logits = try prior.logits(tokens: tokens, classes: [3, 7], threads: 2)
            let wantLogits = try NPY.read(path: Self.fixture("transformer_logits.npy")).values.map { Float($0) }
            let e = zip(logits, wantLogits).map { abs($0 - $1) }.max()!, s = wantLogits.map { abs($0) }.max()!
            XCTAssertLessThan(e, (p == .fp16 ? 0.01 : 0.1) * max(1, s), "transformer \(p): max abs error \(e)")
        }
    }

    /// The sampler on the official model: defaults from the file, the class
    /// token as the official sequence holds it, and guidance refused (no null class).
    func testSamplingTheOfficialTransformer() throws {
        let path = try Self.convertTransformer("transformer")
        let prior = try MaskGITPrior(contentsOf: path)
        let settings = MaskGITSettings(steps: 12, temperature: 1, choiceTemperature: 4.5, schedule: .cosine, guidance: 0)
        let a = try prior.sample(classes: [3, 7], seeds: [1, 2], settings: settings, threads: 1)
        XCTAssertEqual(a.shape, [2, 1, 4, 4])
        XCTAssertTrue(a.values.allSatisfy { $0 >= 0 && $0 < 40 })
        XCTAssertEqual(try prior.sample(classes: [3, 7], seeds: [1, 2], settings: settings, threads: 3), a)
        let tokenizer = try MoVQModel(contentsOf: try Self.convertTokenizer())
        XCTAssertEqual(try tokenizer.decode(indices: a).shape, [2, 3, 16, 16])
    }
}

/// Hostile and wrong flax files: one-line errors naming the parameter path, no output left.
final class MaskGITFlaxInputTests: XCTestCase {
    func pack(_ v: Any) -> [UInt8] { MsgPackWriter.encode(v) }

    func convertFails(_ bytes: [UInt8], _ text: String, config: String? = nil, file: StaticString = #filePath, line: UInt = #line) {
        let dir = TestPaths.scratch(), src = dir + "/checkpoint", out = dir + "/out.mvq"
        try! Data(bytes).write(to: URL(fileURLWithPath: src))
        var configPath: String? = nil
        if let config { configPath = dir + "/c.json"; try! Data(config.utf8).write(to: URL(fileURLWithPath: configPath!)) }
        assertThrows(text, file: file, line: line) { try Converter.convertAny(source: src, output: out, configPath: configPath) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "an output was left behind", file: file, line: line)
    }

    func array(_ shape: [Int], _ dtype: String = "float32", bytes: Int? = nil) -> MsgPackWriter.Ext {
        let n = shape.reduce(1, *) * (dtype == "float16" ? 2 : 4)
        return MsgPackWriter.Ext(type: 1, data: MsgPackWriter.encode([shape, dtype, MsgPackWriter.Binary(count: bytes ?? n)] as [Any]))
    }

    func testRealCheckpointBytesDamaged() throws {
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: MaskGITFlaxTests.fixture("transformer_checkpoint"))))
        convertFails(Array(good.prefix(good.count / 2)), "left")  // truncated
        convertFails(Array(good.prefix(9)), "")
        var flipped = good
        flipped[0] = 0xc1  // never used in msgpack
        convertFails(flipped, "not a checkpoint")
    }

    func testMalformedTrees() {
        convertFails(pack(["a": MsgPackWriter.Ext(type: 7, data: [1, 2])]), "type 7")
        convertFails(pack(["w": MsgPackWriter.Ext(type: 1, data: MsgPackWriter.encode([[2], "float32"] as [Any]))]), "[shape, dtype, bytes]")
        convertFails(pack(["w": array([2, 3], bytes: 20)]), "does not match its 20 bytes")
        convertFails(pack(["w": array([2], "complex64")]), "dtype 'complex64'")
        convertFails(pack(["params": ["Dense_0": ["kernel": array([2, 2])]]]), "neither the MaskGIT tokenizer")
        // A map claiming 2^31 entries in a few bytes is refused before anything is reserved.
        convertFails([0xdf, 0x7f, 0xff, 0xff, 0xff, 0xa1, 0x61], "cannot fit")
        // Nesting deeper than the limit.
        convertFails([UInt8](repeating: 0x81, count: 1) + [UInt8](repeating: 0x91, count: 100) + [0xc0], "")
        var deep: [UInt8] = []
        for _ in 0..<70 { deep += [0x81, 0xa1, 0x61] }
        convertFails(deep + [0xc0], "nested deeper")
    }

    func testWrongParameters() throws {
        // The real transformer with one parameter dropped, one reshaped, one duplicated under another name.
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: MaskGITFlaxTests.fixture("transformer_checkpoint"))))
        let tree = try good.withUnsafeBytes { try FlaxCheckpoint.parse($0, path: "t") }.tensors
        func rebuilt(_ change: (inout [String: CheckpointTensor]) -> Void) -> [UInt8] {
            var byPath = Dictionary(uniqueKeysWithValues: tree.map { ($0.name, $0) })
            change(&byPath)
            return MsgPackWriter.encodeTree(byPath)
        }
        let codes = #"{"codes": 40}"#
        convertFails(rebuilt { $0["MlmLayer_0/mlm_ln/scale"] = nil }, "MlmLayer_0/mlm_ln/scale", config: codes)
        convertFails(rebuilt { $0["TransformerLayer_1/Mlp_0/layer_output/bias"]!.shape = [2, 16]; $0["TransformerLayer_1/Mlp_0/layer_output/bias"]!.values += [Float](repeating: 0, count: 16) }, "TransformerLayer_1/Mlp_0/layer_output/bias", config: codes)
        convertFails(rebuilt { $0["Extra_0/kernel"] = CheckpointTensor(name: "Extra_0/kernel", shape: [1], values: [0]) }, "Extra_0/kernel", config: codes)
        convertFails(rebuilt { $0["Embed_0/embeddings_ln/bias"]!.values[0] = .nan }, "Embed_0/embeddings_ln/bias", config: codes)
        convertFails(rebuilt { _ in }, "fewer than 1024 codes")  // the default codebook needs a bigger vocabulary
        // The tokenizer without a ResBlock's conv.
        let tok = [UInt8](try Data(contentsOf: URL(fileURLWithPath: MaskGITFlaxTests.fixture("tokenizer_checkpoint"))))
        var t = Dictionary(uniqueKeysWithValues: try tok.withUnsafeBytes { try FlaxCheckpoint.parse($0, path: "t") }.tensors.map { ($0.name, $0) })
        t["decoder/ResBlock_2/Conv_1/kernel"] = nil
        convertFails(MsgPackWriter.encodeTree(t), "decoder/ResBlock_2/Conv_1/kernel", config: #"{"norm_num_groups": 8}"#)
    }

    func testMessagePackValues() throws {
        let bytes = pack(["i": -33, "u": 300, "f": 1.5, "s": "x", "a": [true, false], "n": NSNull()] as [String: Any])
        let v = try bytes.withUnsafeBytes { try MessagePack.parse($0, path: "t") }
        XCTAssertEqual(v["i"]?.intValue, -33)
        XCTAssertEqual(v["u"]?.intValue, 300)
        XCTAssertEqual(v["f"], .float(1.5))
        XCTAssertEqual(v["s"], .string("x"))
        XCTAssertEqual(v["a"], .array([.bool(true), .bool(false)]))
        XCTAssertEqual(v["n"], MessagePack.Value.none)
        // Every integer width, sign-extended.
        let ints: [([UInt8], Int64)] = [([0xd0, 0x80], -128), ([0xd1, 0xff, 0x00], -256), ([0xd2, 0x80, 0, 0, 0], -2_147_483_648),
                                        ([0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], -2), ([0xe0], -32), ([0x7f], 127)]
        for (b, want) in ints { XCTAssertEqual(try b.withUnsafeBytes { try MessagePack.parse($0, path: "t") }, .int(want)) }
        assertThrows("after the top-level value") { try [UInt8]([0xc0, 0xc0]).withUnsafeBytes { try MessagePack.parse($0, path: "t") } }
        assertThrows("not UTF-8") { try [UInt8]([0xa1, 0xff]).withUnsafeBytes { try MessagePack.parse($0, path: "t") } }
        assertThrows("duplicate map key") { try [UInt8]([0x82, 0xa1, 0x61, 0xc0, 0xa1, 0x61, 0xc0]).withUnsafeBytes { try MessagePack.parse($0, path: "t") } }
    }
}

/// A small msgpack writer for building test files (flax's layout: string-keyed maps, ndarray extensions).
enum MsgPackWriter {
    struct Ext { var type: Int8; var data: [UInt8] }
    /// `count` zero bytes as a msgpack binary.
    struct Binary { var count: Int; var bytes: [UInt8]? = nil }

    static func encode(_ v: Any) -> [UInt8] {
        var out: [UInt8] = []
        func be(_ x: UInt64, _ n: Int) { for i in (0..<n).reversed() { out.append(UInt8(truncatingIfNeeded: x >> (8 * UInt64(i)))) } }
        func put(_ v: Any) {
            switch v {
            case is NSNull: out.append(0xc0)
            case let b as Bool: out.append(b ? 0xc3 : 0xc2)
            case let i as Int:
                if i >= 0 && i < 128 { out.append(UInt8(i)) } else { out.append(0xd3); be(UInt64(bitPattern: Int64(i)), 8) }
            case let d as Double: out.append(0xcb); be(d.bitPattern, 8)
            case let s as String: let u = Array(s.utf8); out.append(0xdb); be(UInt64(u.count), 4); out += u
            case let b as Binary: out.append(0xc6); be(UInt64(b.count), 4); out += b.bytes ?? [UInt8](repeating: 0, count: b.count)
            case let e as Ext: out.append(0xc9); be(UInt64(e.data.count), 4); out.append(UInt8(bitPattern: e.type)); out += e.data
            case let a as [Any]: out.append(0xdd); be(UInt64(a.count), 4); a.forEach(put)
            case let m as [String: Any]:
                out.append(0xdf); be(UInt64(m.count), 4)
                for k in m.keys.sorted() { put(k); put(m[k]!) }
            default: fatalError("MsgPackWriter: \(type(of: v))")
            }
        }
        put(v)
        return out
    }

    /// A flax checkpoint of `tensors` (paths "a/b/c") as float32 arrays.
    static func encodeTree(_ tensors: [String: CheckpointTensor]) -> [UInt8] {
        var root: [String: Any] = [:]
        func insert(_ parts: ArraySlice<String>, _ leaf: Any, into m: inout [String: Any]) {
            let k = parts.first!
            if parts.count == 1 { m[k] = leaf; return }
            var child = m[k] as? [String: Any] ?? [:]
            insert(parts.dropFirst(), leaf, into: &child)
            m[k] = child
        }
        for (path, t) in tensors {
            let raw = t.values.flatMap { v -> [UInt8] in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
            let leaf = Ext(type: 1, data: encode([t.shape, "float32", Binary(count: raw.count, bytes: raw)] as [Any]))
            insert(ArraySlice(path.split(separator: "/").map(String.init)), leaf, into: &root)
        }
        return encode(["params": root])
    }
}
