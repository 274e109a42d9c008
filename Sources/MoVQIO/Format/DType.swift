/// Element types of tensors in files.
public enum DType: String, Codable, Sendable {
    case f32, f16, bf16, f64, i8, u8, i16, i32, i64, bool

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .f64, .i64: return 8
        case .i8, .u8, .bool: return 1
        }
    }
}

/// Decodes `count` little-endian elements of `dtype` at `raw` into Float.
func decodeFloats(_ raw: UnsafeRawBufferPointer, dtype: DType, count: Int) -> [Float] {
    // Callers validate sizes first; this keeps an unsafe read impossible even then.
    precondition(count >= 0 && count <= raw.count / dtype.size, "decodeFloats: \(count) elements do not fit \(raw.count) bytes")
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { o in
        switch dtype {
        case .f32: for i in 0..<count { o[i] = Float(bitPattern: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian) }
        case .f64: for i in 0..<count { o[i] = Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self).littleEndian)) }
        case .f16: for i in 0..<count { o[i] = Float(halfBitsToFloat(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian)) }
        case .bf16: for i in 0..<count { o[i] = Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian) << 16) }
        case .i8: for i in 0..<count { o[i] = Float(Int8(bitPattern: raw[i])) }
        case .u8: for i in 0..<count { o[i] = Float(raw[i]) }
        case .bool: for i in 0..<count { o[i] = raw[i] != 0 ? 1 : 0 }
        case .i16: for i in 0..<count { o[i] = Float(Int16(bitPattern: raw.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self).littleEndian)) }
        case .i32: for i in 0..<count { o[i] = Float(Int32(bitPattern: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian)) }
        case .i64: for i in 0..<count { o[i] = Float(Int64(bitPattern: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self).littleEndian)) }
        }
    }
    return out
}

/// IEEE half to single, in software so it works on every target.
@inline(__always) func halfBitsToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F)
    let mant = UInt32(h & 0x3FF)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        // Subnormal half: value = mant * 2^-24.
        let v = Float(mant) * Float(bitPattern: 0x3380_0000)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}

/// Single to IEEE half, round to nearest even.
@inline(__always) func floatToHalfBits(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16((x >> 16) & 0x8000)
    let exp = Int((x >> 23) & 0xFF)
    var mant = x & 0x7F_FFFF
    if exp == 255 { return sign | 0x7C00 | (mant != 0 ? 0x200 : 0) }
    var e = exp - 127 + 15
    if e >= 31 { return sign | 0x7C00 }
    if e <= 0 {
        if e < -10 { return sign }
        mant |= 0x80_0000
        let shift = UInt32(14 - e)
        var half = mant >> shift
        let rem = mant & ((1 << shift) - 1), halfway = UInt32(1) << (shift - 1)
        if rem > halfway || (rem == halfway && (half & 1) != 0) { half += 1 }
        return sign | UInt16(half)
    }
    var half = UInt32(e) << 10 | (mant >> 13)
    let rem = mant & 0x1FFF
    if rem > 0x1000 || (rem == 0x1000 && (half & 1) != 0) { half += 1 }
    e = Int(half >> 10)
    return sign | UInt16(truncatingIfNeeded: half)
}
