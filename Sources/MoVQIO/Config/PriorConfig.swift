/// Architecture of a prior over token maps (`Tools/reference/maskgit_reference.py`):
/// `kind` nil or "maskgit" is the bidirectional MaskGIT transformer over a
/// class token plus `height x width` positions, each holding `channels`
/// tokens from a codebook of `codes` entries (id `codes` is MASK); "gpt" is
/// the autoregressive option, a causal pre-norm transformer over the class
/// token and the `height * width * channels` tokens in raster order.
///
/// JSON keys are snake_case, as in the reference's `prior.json`.
public struct PriorConfig: Codable, Equatable, Sendable {
    /// Codebook size `K` (per channel); token id `K` is MASK.
    public var codes: Int
    /// Tokens per position `c` (MoVQ multichannel quantization).
    public var channels: Int
    /// Token map size (the decoder's latent size).
    public var height: Int, width: Int
    /// Classes; class id `classes` is the unconditional (null) class.
    public var classes: Int
    /// Model width, attention heads and transformer layers.
    public var hidden: Int, heads: Int, layers: Int
    /// MLP inner width (GEGLU: width of the gated product).
    public var mlp: Int
    /// "layernorm" or "rmsnorm".
    public var norm: String
    /// "post" (BERT, the official MaskGIT) or "pre".
    public var normPosition: String
    /// "gelu" (tanh form) or "geglu".
    public var activation: String
    /// Epsilon of every LayerNorm / RMSNorm.
    public var normEps: Float
    /// nil or "maskgit": MaskGIT; "gpt": the autoregressive prior.
    public var kind: String?

    enum CodingKeys: String, CodingKey {
        case codes, channels, height, width, classes, hidden, heads, layers, mlp, norm
        case normPosition = "norm_position", activation, normEps = "norm_eps", kind
    }

    /// A config; the defaults are the official MaskGIT's post-LN LayerNorm + GELU.
    public init(codes: Int, channels: Int, height: Int, width: Int, classes: Int, hidden: Int, heads: Int, layers: Int,
                mlp: Int, norm: String = "layernorm", normPosition: String = "post", activation: String = "gelu", normEps: Float = 1e-12) {
        self.codes = codes; self.channels = channels; self.height = height; self.width = width; self.classes = classes
        self.hidden = hidden; self.heads = heads; self.layers = layers; self.mlp = mlp; self.norm = norm
        self.normPosition = normPosition; self.activation = activation; self.normEps = normEps
    }

    /// Token positions `N = height * width` (the sequence adds the class token).
    public var positions: Int { height * width }
    /// Post-LN (BERT, the official MaskGIT) rather than pre-LN.
    public var isPostNorm: Bool { normPosition == "post" }
    /// RMSNorm rather than LayerNorm.
    public var isRMSNorm: Bool { norm == "rmsnorm" }
    /// A GEGLU MLP rather than GELU.
    public var isGEGLU: Bool { activation == "geglu" }
    /// The autoregressive (GPT) prior.
    public var isAutoregressive: Bool { kind == "gpt" }

    /// Throws on settings this runtime cannot run or absurd sizes.
    public func validate() throws {
        func fail(_ s: String) throws -> Never { throw MoVQError.invalidCheckpoint("prior config: \(s)") }
        if codes < 1 || codes > 1 << 20 { try fail("absurd codes \(codes)") }
        if channels < 1 || channels > 64 { try fail("absurd channels \(channels)") }
        // Products are checked: a wrapped height * width would pass as a small map.
        guard height >= 1, width >= 1, let tokens = CheckedSize.product([height, width, channels], limit: 1 << 16) else {
            try fail("absurd token map \(height)x\(width)x\(channels) (at most 65536 tokens)")
        }
        _ = tokens
        if classes < 0 || classes > 1 << 20 { try fail("absurd classes \(classes)") }
        if hidden < 1 || hidden > 1 << 14 || layers < 1 || layers > 256 || mlp < 1 || mlp > 1 << 16 { try fail("absurd sizes") }
        if heads < 1 || hidden % heads != 0 { try fail("hidden \(hidden) is not a multiple of heads \(heads)") }
        if !["layernorm", "rmsnorm"].contains(norm) { try fail("norm must be layernorm or rmsnorm, got '\(norm)'") }
        if !["post", "pre"].contains(normPosition) { try fail("norm_position must be post or pre, got '\(normPosition)'") }
        if !["gelu", "geglu"].contains(activation) { try fail("activation must be gelu or geglu, got '\(activation)'") }
        if !(normEps > 0 && normEps < 1) { try fail("norm_eps must be in (0, 1)") }
        if let k = kind, !["maskgit", "gpt"].contains(k) { try fail("kind must be maskgit or gpt, got '\(k)'") }
        if isAutoregressive && isPostNorm { try fail("the gpt prior is pre-norm") }
    }
}

/// Every tensor a prior config implies, in file order (derived from
/// `TransformerPlans`, so the converter and the runtime agree).
public func tensorSpecs(for c: PriorConfig) -> [TensorSpec] { TransformerPlans.tensorSpecs(c) }
