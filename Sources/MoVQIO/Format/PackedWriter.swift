import Foundation
import MoVQKernelCore

/// A tensor to be written: plain values are converted to `dtype` on write
/// and arranged in `layout` (kernel layouts: `f32` only). An `i8` tensor is
/// quantized per output channel (`Int8Weights`) and written with an `f32`
/// companion tensor of scales named `Int8Weights.scaleName`.
package struct PackedTensorInput: Sendable {
    package var name: String
    package var shape: [Int]
    package var values: [Float]
    package var dtype: DType
    package var layout: TensorLayout
    package init(name: String, shape: [Int], values: [Float], dtype: DType = .f32, layout: TensorLayout = .plain) {
        self.name = name; self.shape = shape; self.values = values; self.dtype = dtype; self.layout = layout
    }
}

/// Serializes a model into the packed format. Output is a pure function of
/// the inputs (sorted JSON keys, fixed tensor order), so converting the same
/// checkpoint twice gives byte-identical files.
package enum PackedWriter {
    package static func serialize(config: MoVQConfig, tensors: [PackedTensorInput], metadata: [String: String]) throws -> Data {
        try serialize(PackedHeader(config: config, tensors: [], metadata: metadata), tensors: tensors)
    }

    /// Serializes a MaskGIT prior (kind "maskgit-prior").
    package static func serialize(prior: PriorConfig, tensors: [PackedTensorInput], metadata: [String: String]) throws -> Data {
        try serialize(PackedHeader(kind: "maskgit-prior", config: nil, prior: prior, tensors: [], metadata: metadata), tensors: tensors)
    }

    /// Serializes `tensors` under `template` (its tensor table is replaced).
    static func serialize(_ template: PackedHeader, tensors: [PackedTensorInput]) throws -> Data {
        var blobs: [[UInt8]] = []
        var entries: [PackedTensorEntry] = []
        func add(_ name: String, _ dtype: DType, _ shape: [Int], _ bytes: [UInt8], scales: String? = nil, layout: TensorLayout = .plain) {
            blobs.append(bytes)
            entries.append(PackedTensorEntry(name: name, dtype: dtype, shape: shape, layout: layout.rawValue,
                                             offset: 0, bytes: bytes.count, crc32: CRC32.checksum(bytes), scales: scales))
        }
        for t in tensors {
            guard t.values.count == t.shape.reduce(1, *) else {
                throw MoVQError.invalidCheckpoint("tensor '\(t.name)' has \(t.values.count) values for shape \(t.shape)")
            }
            if t.dtype == .i8 {
                guard let o = t.shape.first, o > 0 else { throw MoVQError.invalidCheckpoint("int8 tensor '\(t.name)' needs an output-channel axis") }
                let (q, scales) = Int8Weights.quantize(t.values, outChannels: o)
                let scaleName = Int8Weights.scaleName(t.name)
                if t.layout == .plain {
                    add(t.name, .i8, t.shape, q.map { UInt8(bitPattern: $0) }, scales: scaleName)
                } else if t.layout.dtype == .i8, t.layout.storedElements(t.shape) != nil, t.shape[1] <= WinogradByteWeights.maxInputs {
                    let packed = q.withUnsafeBufferPointer { qp in scales.withUnsafeBufferPointer { t.layout.packS8(qp, scales: $0, shape: t.shape) } }
                    add(t.name, .i8, t.shape, encode(packed.words), scales: scaleName, layout: t.layout)
                    add(scaleName, .f32, t.layout.scaleShape(t.shape), encode(packed.scales, as: .f32))
                    continue
                } else {
                    guard t.layout.dtype == .i16, t.layout.storedElements(t.shape) != nil else {
                        throw MoVQError.invalidCheckpoint("int8 tensor '\(t.name)' (shape \(t.shape)) cannot be stored as \(t.layout.rawValue)")
                    }
                    let words = q.withUnsafeBufferPointer { qp in scales.withUnsafeBufferPointer { t.layout.packInt16(qp, scales: $0, shape: t.shape) } }
                    add(t.name, .i16, t.shape, encode(words), scales: scaleName, layout: t.layout)
                }
                add(scaleName, .f32, [o], encode(scales, as: .f32))
            } else if t.layout != .plain {
                guard t.dtype == .f32, t.layout.storedElements(t.shape) != nil else {
                    throw MoVQError.invalidCheckpoint("tensor '\(t.name)' (\(t.dtype.rawValue), shape \(t.shape)) cannot be stored as \(t.layout.rawValue)")
                }
                add(t.name, .f32, t.shape, encode(t.values.withUnsafeBufferPointer { t.layout.pack($0, shape: t.shape) }, as: .f32), layout: t.layout)
            } else {
                add(t.name, t.dtype, t.shape, encode(t.values, as: t.dtype))
            }
        }
        // Offsets depend on the header length, which depends on the offsets'
        // digits: iterate until the layout is stable (two rounds in practice).
        var dataStart = 0
        var headerBytes: [UInt8] = []
        for _ in 0..<8 {
            var off = dataStart
            for i in entries.indices { entries[i].offset = off; off = align(off + entries[i].bytes) }
            var header = template
            header.tensors = entries
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            headerBytes = Array(try enc.encode(header))
            let start = align(PackedFormat.fixedHeaderSize + headerBytes.count)
            if start == dataStart { break }
            dataStart = start
        }
        var out = Data()
        out.append(contentsOf: PackedFormat.magic)
        out.appendLE(PackedFormat.version)
        out.appendLE(UInt32(0))
        out.appendLE(UInt64(headerBytes.count))
        out.appendLE(CRC32.checksum(headerBytes))
        out.appendLE(UInt32(0))
        out.append(contentsOf: headerBytes)
        for (e, blob) in zip(entries, blobs) {
            out.append(contentsOf: [UInt8](repeating: 0, count: e.offset - out.count))
            out.append(contentsOf: blob)
        }
        return out
    }

    static func align(_ n: Int) -> Int { (n + PackedFormat.alignment - 1) / PackedFormat.alignment * PackedFormat.alignment }

    /// Little-endian bytes of 32-bit words.
    static func encode(_ words: [Int32]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: words.count * 4)
        out.withUnsafeMutableBytes { o in for i in words.indices { o.storeBytes(of: words[i].littleEndian, toByteOffset: 4 * i, as: Int32.self) } }
        return out
    }

    static func encode(_ v: [Float], as dtype: DType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: v.count * dtype.size)
        out.withUnsafeMutableBytes { o in
            switch dtype {
            case .f16: for i in v.indices { o.storeBytes(of: floatToHalfBits(v[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            default: for i in v.indices { o.storeBytes(of: v[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            }
        }
        return out
    }
}
