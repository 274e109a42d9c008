import ArgumentParser
import Foundation
import MoVQ

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a packed model's config, tensors, sizes and checksums (--verify checks them all).")

    @Argument(help: "Packed .mvq model.")
    var model: String
    @Flag(help: "Print the header as JSON.")
    var json = false
    @Flag(help: "List every tensor (name, type, shape, bytes, checksum).")
    var tensors = false
    @Flag(help: "Check every tensor's CRC-32 (decoding and sampling check each tensor as they read it).")
    var verify = false

    func run() throws {
        try reportingErrors {
            let file = try PackedFile(path: model, verifyChecksums: true)
            if verify { try file.verifyAllChecksums() }
            let h = file.header
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(h), as: UTF8.self))
                return
            }
            print("\(model): \(file.fileSize) bytes, \(h.tensors.count) tensors, \(verify ? "checksums OK" : "checksums not checked (--verify checks them)")")
            let kind = h.prior.map { $0.isAutoregressive ? "autoregressive (gpt) prior" : "MaskGIT prior" } ?? "VQ autoencoder"
            print("kind: \(kind); metadata: " + h.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
            if let p = h.prior {
                print("prior: \(p.layers) layers, hidden \(p.hidden), \(p.heads) heads, mlp \(p.mlp) (\(p.activation)), \(p.norm) \(p.normPosition)-norm")
                print("       tokens \(p.height)x\(p.width) x \(p.channels) from \(p.codes) codes, \(p.classes) classes")
            }
            if let c = h.config {
                print("config: \(c.architecture.map { "architecture \($0.rawValue), " } ?? "")block_out_channels \(c.blockOutChannels), layers_per_block \(c.layersPerBlock), norm \(c.normType.rawValue)")
                print("        latent \(c.latentChannels), z_q \(c.vqEmbedDim) = \(c.channelsPerPosition) x \(c.codebookDim), codebook \(c.numVQEmbeddings)")
                print("        groups \(c.normNumGroups) (spatial \(c.spatialNormGroups)), eps \(c.normEps), encoder \(c.hasEncoder), f \(c.downsampleFactor)")
            }
            let scaleTensors = Set(h.tensors.compactMap(\.scales))  // int8 companions, not parameters
            let params = h.tensors.filter { !scaleTensors.contains($0.name) }.reduce(0) { $0 + $1.elementCount }
            print("parameters: \(params)")
            // Bytes and tensor count per stored type.
            let byType = Dictionary(grouping: h.tensors, by: \.dtype).sorted { $0.key.rawValue < $1.key.rawValue }
            print("precision: " + byType.map { t, es in
                String(format: "%@ %d tensors %.1f MB", t.rawValue, es.count, Double(es.reduce(0) { $0 + $1.bytes }) / 1e6)
            }.joined(separator: "; ") + String(format: " (file %.1f MB)", Double(file.fileSize) / 1e6))
            guard tensors else { print("(--tensors lists all \(h.tensors.count) tensors)"); return }
            for t in h.tensors {
                let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
                let crc = String(t.crc32, radix: 16)
                print("  " + t.name.padding(toLength: max(64, t.name.count), withPad: " ", startingAt: 0) + " " + t.dtype.rawValue + " "
                      + shape.padding(toLength: 20, withPad: " ", startingAt: 0) + String(repeating: " ", count: max(0, 10 - String(t.bytes).count)) + "\(t.bytes) B  crc "
                      + String(repeating: "0", count: 8 - crc.count) + crc)
            }
        }
    }
}
