import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Damaged, hostile or unusual checkpoints (zip, pickle, safetensors, configs) are read or refused with a clear `MoVQError`.
final class CheckpointInputTests: XCTestCase {
    func testHostilePickleIsRefused() {
        assertThrows("global 'posix.system' is not allowed") { try CheckpointImporter.load(path: TestPaths.fixture("bad/hostile.ckpt")) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/movq_pwned"))
        assertThrows("pre-1.6, non-zip") { try CheckpointImporter.load(path: TestPaths.fixture("bad/legacy.pt")) }
    }

    func testTruncatedCheckpoints() throws {
        let ckpt = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("tiny_movq/original.ckpt")))
        for cut in [3, 100, ckpt.count / 2, ckpt.count - 30] {
            assertThrows("") { try CheckpointImporter.load(path: write(ckpt.prefix(cut), "t.ckpt")) }
        }
        let st = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("tiny_vqgan/diffusers/diffusion_pytorch_model.safetensors")))
        for cut in [0, 7, 50, st.count / 2, st.count - 1] {
            assertThrows("") { try CheckpointImporter.load(path: write(st.prefix(cut), "t.safetensors")) }
        }
    }

    func testEditedCheckpoints() throws {
        XCTAssertNoThrow(try importEdited { _ in })
        assertThrows("missing tensor 'decoder.conv_in.bias'") { try importEdited { $0.removeAll { $0.0 == "decoder.conv_in.bias" } } }
        assertThrows("tensor 'decoder.conv_out.weight' has shape [3, 24, 3, 2]") {
            try importEdited { t in let i = t.firstIndex { $0.0 == "decoder.conv_out.weight" }!; t[i].1 = [3, 24, 3, 2]; t[i].2.removeLast(3 * 24 * 3) }
        }
        assertThrows("contains NaN") { try importEdited { t in let i = t.firstIndex { $0.0 == "encoder.conv_in.bias" }!; t[i].2[0] = .nan } }
        assertThrows("unknown checkpoint keys (1): decoder.extra.weight") { try importEdited { $0.append(("decoder.extra.weight", [2], [1, 2])) } }
        assertThrows("not divisible") {
            try CheckpointImporter.load(path: TestPaths.fixture("tiny_vqgan/diffusers"), configPath: write(Data(#"{"norm_num_groups": 7}"#.utf8), "c.json"))
        }
    }

    func testOlderDiffusersAttentionNames() throws {
        let renamed = try importEdited { t in
            for i in t.indices {
                for (new, old) in [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")] {
                    t[i].0 = t[i].0.replacingOccurrences(of: new, with: old)
                }
            }
        }
        let plain = try importEdited { _ in }
        XCTAssertEqual(renamed.config, plain.config)
        XCTAssertEqual(renamed.tensors.map(\.name), plain.tensors.map(\.name))
        XCTAssertEqual(renamed.tensors.map(\.values), plain.tensors.map(\.values))
    }

    func testWrongDTypeInSafetensors() throws {
        var h = Data(#"{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#.utf8)
        h.append(contentsOf: [UInt8](repeating: 0x20, count: 0))
        var d = Data(); d.appendLE(UInt64(h.count)); d.append(h); d.append(Data(count: 8))
        assertThrows("dtype I64") { try CheckpointImporter.load(path: write(d, "i.safetensors")) }
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

    // 5. Prior config whose height * width wraps to 0.
    func testPriorTokenMapProductCannotWrap() {
        var c = PriorConfig(codes: 16, channels: 1, height: 1 << 32, width: 1 << 32, classes: 2, hidden: 8, heads: 2, layers: 1, mlp: 16)
        assertThrows("absurd token map") { try c.validate() }
        c.height = 1 << 62; c.width = 4
        assertThrows("absurd token map") { try c.validate() }
    }
}
