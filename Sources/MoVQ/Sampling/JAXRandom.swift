import Foundation

/// JAX's default random numbers, as `jax.random` computes them on CPU:
/// threefry2x32 keys, `split`, 32-bit `random_bits`, float32 `uniform` and
/// `gumbel` (the default "low" mode). With them the official MaskGIT loop's
/// draws can be replayed: the same seed gives the official token maps
/// (up to float rounding in XLA's `log`/`exp`, which can flip near-ties).
///
/// `partitionable` is JAX's `jax_threefry_partitionable` flag: true is the
/// default since JAX 0.5 (the counter of element `i` is the 64-bit `i`);
/// false is the scheme of the JAX the official code was written for (the
/// flat counter array split in halves). Checked against jax 0.10.2 both ways
/// (Tests/MoVQTests/Sampling/JAXRandomTests.swift).
public struct JAXKey: Sendable, Equatable {
    public var k1: UInt32, k2: UInt32
    public var partitionable: Bool

    /// `jax.random.PRNGKey(seed)`: the seed's high and low 32 bits.
    public init(seed: UInt64, partitionable: Bool = true) {
        k1 = UInt32(truncatingIfNeeded: seed >> 32); k2 = UInt32(truncatingIfNeeded: seed); self.partitionable = partitionable
    }

    init(_ k1: UInt32, _ k2: UInt32, partitionable: Bool) { self.k1 = k1; self.k2 = k2; self.partitionable = partitionable }

    /// The Threefry-2x32 hash (20 rounds) of the counter pair `(x0, x1)`.
    @inline(__always)
    func threefry(_ x0: UInt32, _ x1: UInt32) -> (UInt32, UInt32) {
        let ks = (k1, k2, k1 ^ k2 ^ 0x1BD1_1BDA)
        var a = x0 &+ ks.0, b = x1 &+ ks.1
        @inline(__always) func mix(_ rot: UInt32) { a = a &+ b; b = (b << rot) | (b >> (32 - rot)); b ^= a }
        @inline(__always) func even() { mix(13); mix(15); mix(26); mix(6) }
        @inline(__always) func odd() { mix(17); mix(29); mix(16); mix(24) }
        even(); a = a &+ ks.1; b = b &+ ks.2 &+ 1
        odd(); a = a &+ ks.2; b = b &+ ks.0 &+ 2
        even(); a = a &+ ks.0; b = b &+ ks.1 &+ 3
        odd(); a = a &+ ks.1; b = b &+ ks.2 &+ 4
        even(); a = a &+ ks.2; b = b &+ ks.0 &+ 5
        return (a, b)
    }

    /// `jax.random.split(key, count)`.
    public func split(_ count: Int = 2) -> [JAXKey] {
        if partitionable {
            return (0..<count).map { j in let (a, b) = threefry(UInt32(truncatingIfNeeded: j >> 32), UInt32(truncatingIfNeeded: j)); return JAXKey(a, b, partitionable: true) }
        }
        // threefry_2x32 over iota(2 count), reshaped [count, 2].
        let flat = (0..<(2 * count)).map { bits($0, of: 2 * count) }
        return (0..<count).map { JAXKey(flat[2 * $0], flat[2 * $0 + 1], partitionable: false) }
    }

    /// `random_bits(key, 32, shape)` element `i` of `total` (row-major).
    @inline(__always)
    public func bits(_ i: Int, of total: Int) -> UInt32 {
        if partitionable {
            let (a, b) = threefry(UInt32(truncatingIfNeeded: i >> 32), UInt32(truncatingIfNeeded: i))
            return a ^ b
        }
        // The counters 0..<total split in halves: element i < half is word 0 of pair (i, i + half), else word 1 of (i - half, i).
        let half = (total + 1) / 2
        let j = i < half ? i : i - half
        let (a, b) = threefry(UInt32(truncatingIfNeeded: j), j + half < total ? UInt32(truncatingIfNeeded: j + half) : 0)
        return i < half ? a : b
    }

    /// `uniform(key, shape, float32, minval: tiny, maxval: 1)` from bits: the
    /// 23 high bits as a mantissa in [1, 2), minus 1, raised to the smallest
    /// normal (JAX's scale `maxval - minval` is `1 - tiny`, which is 1 in float32).
    @inline(__always)
    public static func uniformTiny(_ bits: UInt32) -> Float {
        let f = Float(bitPattern: (bits >> 9) | 0x3F80_0000) - 1
        return max(Float.leastNormalMagnitude, f + Float.leastNormalMagnitude)
    }

    /// `gumbel(key, shape)` element from its bits: `-log(-log(u))`.
    @inline(__always)
    public static func gumbel(_ bits: UInt32) -> Float { -Foundation.log(-Foundation.log(uniformTiny(bits))) }
}

/// The official loop's randomness for one image of a batch of `batch`
/// (`parallel_decode`): per step `rng, sample = split(rng)` then
/// `rng, choice = split(rng)`; tokens by `categorical(sample, logits)` over
/// the whole `[batch, 1 + N, K]` logits (the class token first), the
/// choice noise by `gumbel(choice, [batch, 1 + N])`. Every image holds the
/// batch's key, so image `i` of a batch is what the official loop gives it
/// in that batch (in JAX the batch shares one key: an image changes with
/// the batch size, unlike our default stream).
public struct JAXMaskGITNoise: MaskGITNoise {
    var rng: JAXKey
    let image: Int, batch: Int
    var sampleKey = JAXKey(seed: 0), choiceKey = JAXKey(seed: 0)
    var sequence = 0

    /// Image `image` of a batch of `batch` sampled from `jax.random.PRNGKey(seed)`.
    public init(seed: UInt64, image: Int, batch: Int, partitionable: Bool = true) {
        rng = JAXKey(seed: seed, partitionable: partitionable); self.image = image; self.batch = batch
    }

    public mutating func startStep(positions n: Int, channels: Int, codes k: Int) throws {
        guard channels == 1 else { throw MoVQError.invalidInput("the JAX random stream replays the official single-channel MaskGIT") }
        let s = rng.split(); rng = s[0]; sampleKey = s[1]
        let c = rng.split(); rng = c[0]; choiceKey = c[1]
        sequence = n + 1
    }

    /// `argmax(logits + gumbel)` (the first maximum), and `log softmax` at it.
    public func drawToken(_ logits: UnsafePointer<Float>, row q: Int, codes k: Int, inverseTemperature t: Float,
                          scratch: UnsafeMutablePointer<Float>) -> (token: Int, logProbability: Float) {
        let total = batch * sequence * k, base = (image * sequence + 1 + q) * k
        var best = -Float.infinity, token = 0, m = -Float.infinity
        for j in 0..<k {
            let l = logits[j] * t
            m = max(m, l)
            let v = l + JAXKey.gumbel(sampleKey.bits(base + j, of: total))
            if v > best { best = v; token = j }
        }
        var sum: Float = 0
        for j in 0..<k { sum += Foundation.exp(logits[j] * t - m) }
        return (token, (logits[token] * t - m) - Foundation.log(sum))
    }

    public func choiceGumbel(position q: Int) -> Float {
        JAXKey.gumbel(choiceKey.bits(image * sequence + 1 + q, of: batch * sequence))
    }
}
