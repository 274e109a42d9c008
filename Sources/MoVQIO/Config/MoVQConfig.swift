/// The architecture of a MoVQ / VQGAN autoencoder, in diffusers terms.
///
/// Stored as JSON in the packed file's header. Every field can be inferred
/// from a checkpoint's tensor shapes except the GroupNorm group counts.
public struct MoVQConfig: Codable, Equatable, Sendable {
    /// How the decoder normalizes.
    public enum NormType: String, Codable, Sendable {
        /// MoVQ: GroupNorm modulated by the quantized latent (SCN).
        case spatial
        /// Plain VQGAN: GroupNorm with affine parameters only.
        case group
    }

    /// A family whose layers differ from the diffusers `VQModel`.
    public enum Architecture: String, Codable, Sendable {
        /// The official MaskGIT tokenizer (google-research/maskgit `vqgan_tokenizer.py`):
        /// no attention, bias-free resnet convs with the official shortcut,
        /// 2x2 average-pool downsampling, no quant/post-quant convs, images in [0, 1].
        case maskgitVQGAN = "maskgit-vqgan"
    }

    /// nil: the diffusers `VQModel` (MoVQ with SCN, or plain VQGAN); else the named family.
    public var architecture: Architecture?

    /// Image channels read by the encoder (3 for RGB).
    public var inChannels: Int = 3
    /// Image channels written by the decoder.
    public var outChannels: Int = 3
    /// Channels per resolution level, highest resolution first.
    public var blockOutChannels: [Int]
    /// Resnets per encoder level (the decoder has one more per level).
    public var layersPerBlock: Int
    /// Whether each encoder level (highest resolution first) has attention.
    public var encoderAttention: [Bool]
    /// Whether each decoder level (lowest resolution first) has attention.
    public var decoderAttention: [Bool]
    /// Whether the mid blocks have attention.
    public var midBlockAttention: Bool = true
    /// Channels of the decoder's input latent (after post_quant_conv).
    public var latentChannels: Int
    /// Channels of the quantized latent z_q (c * codebookDim).
    public var vqEmbedDim: Int
    /// Codebook size; 0 when the checkpoint has no quantizer.
    public var numVQEmbeddings: Int
    /// Length of one codebook vector; `vqEmbedDim / codebookDim` is the
    /// number of indices per latent position (multichannel quantization).
    public var codebookDim: Int
    /// Groups of the encoder's (and a plain decoder's) GroupNorms.
    public var normNumGroups: Int = 32
    /// Groups of the decoder's spatial norms (diffusers fixes 32).
    public var spatialNormGroups: Int = 32
    /// GroupNorm epsilon.
    public var normEps: Float = 1e-6
    /// Decoder normalization kind.
    public var normType: NormType = .spatial
    /// Whether the file has the encoder (needed by encode / reconstruct).
    public var hasEncoder: Bool = true

    /// Whether the network's images are in [0, 1] (the API's are always in
    /// [-1, 1]; the model maps them at its input and output).
    public var imagesInUnitRange: Bool { architecture == .maskgitVQGAN }

    /// Indices per latent position (`c` in the MoVQ paper).
    public var channelsPerPosition: Int { vqEmbedDim / max(1, codebookDim) }
    /// Spatial reduction factor between image and latent.
    public var downsampleFactor: Int { 1 << (blockOutChannels.count - 1) }
    /// Whether the model can turn indices into latents and back.
    public var hasQuantizer: Bool { numVQEmbeddings > 0 }

    /// A config with the fields shapes reveal; the rest take the diffusers defaults.
    public init(blockOutChannels: [Int], layersPerBlock: Int, encoderAttention: [Bool], decoderAttention: [Bool],
                latentChannels: Int, vqEmbedDim: Int, numVQEmbeddings: Int, codebookDim: Int) {
        self.blockOutChannels = blockOutChannels; self.layersPerBlock = layersPerBlock
        self.encoderAttention = encoderAttention; self.decoderAttention = decoderAttention
        self.latentChannels = latentChannels; self.vqEmbedDim = vqEmbedDim
        self.numVQEmbeddings = numVQEmbeddings; self.codebookDim = codebookDim
    }

    /// The Kandinsky 2.1/2.2 "movq" (67.8M parameters).
    public static var kandinsky: MoVQConfig {
        MoVQConfig(blockOutChannels: [128, 256, 256, 512], layersPerBlock: 2,
                   encoderAttention: [false, false, false, true], decoderAttention: [true, false, false, false],
                   latentChannels: 4, vqEmbedDim: 4, numVQEmbeddings: 16384, codebookDim: 4)
    }

    /// The official MaskGIT ImageNet tokenizer (google-research/maskgit
    /// `vqgan_config.py`: 128 filters, multipliers [1, 1, 2, 2, 4], 2 res
    /// blocks, 1024 codes of 256; 54.5M parameters).
    public static var maskgitTokenizer256: MoVQConfig {
        var c = MoVQConfig(blockOutChannels: [128, 128, 256, 256, 512], layersPerBlock: 2,
                           encoderAttention: [false, false, false, false, false], decoderAttention: [false, false, false, false, false],
                           latentChannels: 256, vqEmbedDim: 256, numVQEmbeddings: 1024, codebookDim: 256)
        c.architecture = .maskgitVQGAN; c.midBlockAttention = false; c.normType = .group
        return c
    }

    /// Checks internal consistency; throws `invalidCheckpoint` naming the problem.
    public func validate() throws {
        func fail(_ s: String) throws -> Never { throw MoVQError.invalidCheckpoint(s) }
        let levels = blockOutChannels.count
        if levels < 1 || levels > 8 { try fail("block_out_channels must have 1...8 levels, has \(levels)") }
        if blockOutChannels.contains(where: { $0 < 1 || $0 > 65536 }) { try fail("absurd block_out_channels \(blockOutChannels)") }
        if layersPerBlock < 1 || layersPerBlock > 64 { try fail("absurd layers_per_block \(layersPerBlock)") }
        if encoderAttention.count != levels || decoderAttention.count != levels { try fail("attention flags need \(levels) levels") }
        if inChannels < 1 || outChannels < 1 || latentChannels < 1 || vqEmbedDim < 1 || codebookDim < 1 { try fail("channel counts must be positive") }
        if inChannels > 4096 || outChannels > 4096 || latentChannels > 65536 || vqEmbedDim > 65536 { try fail("absurd channel counts") }
        if numVQEmbeddings < 0 || numVQEmbeddings > 1 << 26 { try fail("absurd codebook size \(numVQEmbeddings)") }
        if vqEmbedDim % codebookDim != 0 { try fail("vq_embed_dim \(vqEmbedDim) is not a multiple of the codebook dim \(codebookDim)") }
        if normType == .spatial && vqEmbedDim != latentChannels {
            try fail("spatial norm needs vq_embed_dim (\(vqEmbedDim)) == latent_channels (\(latentChannels))")
        }
        if normNumGroups < 1 || spatialNormGroups < 1 { try fail("group counts must be positive") }
        let decoderGroups = normType == .spatial ? spatialNormGroups : normNumGroups
        for ch in blockOutChannels {
            if hasEncoder && ch % normNumGroups != 0 {
                try fail("encoder channels \(ch) not divisible by norm_num_groups \(normNumGroups) (set it with --config)")
            }
            if ch % decoderGroups != 0 {
                try fail("decoder channels \(ch) not divisible by \(decoderGroups) norm groups (set it with --config)")
            }
        }
        if !(normEps > 0 && normEps < 1) { try fail("norm eps \(normEps) out of range") }
        if architecture == .maskgitVQGAN {
            if encoderAttention.contains(true) || decoderAttention.contains(true) || midBlockAttention || normType != .group {
                try fail("the MaskGIT tokenizer has no attention and plain GroupNorms")
            }
            if latentChannels != vqEmbedDim { try fail("the MaskGIT tokenizer has no post-quant conv: latent_channels must be vq_embed_dim") }
        }
    }
}
