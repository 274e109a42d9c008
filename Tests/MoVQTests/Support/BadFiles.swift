import Foundation
import XCTest
@testable import MoVQ
@testable import MoVQIO

/// Files the bad-input tests start from and edit.
extension XCTestCase {
    func packedModelFile() throws -> (path: String, data: Data) {
        let p = TestPaths.scratch() + "/m.mvq"
        try Converter.convert(source: TestPaths.fixture("tiny_vqgan/diffusers"), output: p)
        return (p, try Data(contentsOf: URL(fileURLWithPath: p)))
    }

    func write(_ d: Data, _ name: String = "x.mvq") -> String {
        let p = TestPaths.scratch() + "/" + name
        try! d.write(to: URL(fileURLWithPath: p))
        return p
    }

    /// Builds a safetensors file from float tensors.
    func safetensors(_ tensors: [(String, [Int], [Float])]) -> Data {
        var header: [String: Any] = [:]
        var body = Data()
        for (name, shape, values) in tensors {
            header[name] = ["dtype": "F32", "shape": shape, "data_offsets": [body.count, body.count + values.count * 4]]
            for v in values { body.appendLE(v.bitPattern) }
        }
        let h = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var out = Data()
        out.appendLE(UInt64(h.count))
        return out + h + body
    }

    func fixtureTensors() throws -> [(String, [Int], [Float])] {
        try Safetensors.read(path: TestPaths.fixture("tiny_vqgan/diffusers/diffusion_pytorch_model.safetensors")).map { ($0.name, $0.shape, $0.values) }
    }

    func importEdited(_ edit: (inout [(String, [Int], [Float])]) -> Void) throws -> ImportedModel {
        var t = try fixtureTensors()
        edit(&t)
        let p = write(safetensors(t), "e.safetensors")
        return try CheckpointImporter.load(path: p, configPath: write(Data(#"{"norm_num_groups": 8}"#.utf8), "c.json"))
    }

    func write(_ b: [UInt8], _ name: String) -> String { write(Data(b), name) }

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
}
