"""Reference MoVQ pieces in PyTorch/diffusers, shared by the Tools/ scripts.

- build_vqmodel: a diffusers VQModel (spatial or group norm);
- MultichannelQuantizer: the MoVQ paper's multichannel quantization with one
  shared codebook (c chunks of d channels per position);
- to_original_layout: diffusers state dict -> Kandinsky/taming key names.
"""
import re
import torch
from diffusers import VQModel


def build_vqmodel(block_out_channels, layers_per_block, latent_channels, vq_embed_dim,
                  num_vq_embeddings, norm_num_groups=32, norm_type="spatial",
                  encoder_attention_last=True, decoder_attention_first=True):
    n = len(block_out_channels)
    down = ["DownEncoderBlock2D"] * n
    up = ["UpDecoderBlock2D"] * n
    if encoder_attention_last:
        down[-1] = "AttnDownEncoderBlock2D"
    if decoder_attention_first:
        up[0] = "AttnUpDecoderBlock2D"
    return VQModel(in_channels=3, out_channels=3, down_block_types=down, up_block_types=up,
                   block_out_channels=list(block_out_channels), layers_per_block=layers_per_block,
                   latent_channels=latent_channels, vq_embed_dim=vq_embed_dim,
                   num_vq_embeddings=num_vq_embeddings, norm_num_groups=norm_num_groups,
                   norm_type=norm_type)


def randomize_(model, seed):
    """Give every parameter (norm affines included) random, well-scaled values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


class MultichannelQuantizer(torch.nn.Module):
    """Splits [B, c*d, h, w] into c chunks of d channels; each chunk snaps to its
    nearest row of one shared codebook [K, d] (squared L2, ties -> lowest)."""

    def __init__(self, num_embeddings, dim, chunks):
        super().__init__()
        self.embedding = torch.nn.Embedding(num_embeddings, dim)
        self.dim, self.chunks = dim, chunks

    def indices(self, z):
        b, _, h, w = z.shape
        v = z.reshape(b, self.chunks, self.dim, h, w).permute(0, 1, 3, 4, 2).reshape(-1, self.dim)
        d = ((v[:, None, :] - self.embedding.weight[None, :, :]) ** 2).sum(-1)
        return d.argmin(1).reshape(b, self.chunks, h, w)

    def lookup(self, idx):
        b, c, h, w = idx.shape
        e = self.embedding.weight[idx.reshape(-1)].reshape(b, c, h, w, self.dim)
        return e.permute(0, 1, 4, 2, 3).reshape(b, c * self.dim, h, w)

    def forward(self, z):
        idx = self.indices(z)
        zq = self.lookup(idx)
        commit = ((zq.detach() - z) ** 2).mean()
        codebook = ((zq - z.detach()) ** 2).mean()
        zq = z + (zq - z).detach()  # straight-through
        return zq, codebook + 0.25 * commit, idx


def decode_zq(model, zq):
    """Decoder on z_q, conditioned on z_q before post_quant_conv (as diffusers)."""
    spatial = model.config.norm_type == "spatial"
    return model.decoder(model.post_quant_conv(zq), zq if spatial else None)


def encode_latent(model, x):
    return model.quant_conv(model.encoder(x))


def to_original_layout(sd):
    """diffusers VQModel keys -> original Kandinsky/taming keys (1x1 attention
    projections become [C, C, 1, 1] conv weights)."""
    levels = 1 + max(int(m.group(1)) for k in sd for m in [re.match(r"decoder\.up_blocks\.(\d+)\.", k)] if m)
    out = {}
    for k, v in sd.items():
        n = k
        n = re.sub(r"decoder\.up_blocks\.(\d+)\.", lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.", n)
        n = re.sub(r"encoder\.down_blocks\.(\d+)\.", r"encoder.down.\1.", n)
        n = n.replace(".resnets.", ".block.").replace(".attentions.", ".attn.")
        n = n.replace(".upsamplers.0.conv", ".upsample.conv").replace(".downsamplers.0.conv", ".downsample.conv")
        n = n.replace("mid_block.block.0", "mid.block_1").replace("mid_block.block.1", "mid.block_2")
        n = n.replace("mid_block.attn.0", "mid.attn_1")
        n = n.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        is_attn = ".attn." in n or ".attn_1." in n
        if is_attn:
            n = n.replace(".spatial_norm.", ".norm.").replace(".group_norm.", ".norm.")
            for a, b in ((".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."), (".to_out.0.", ".proj_out.")):
                n = n.replace(a, b)
            if v.dim() == 2:
                v = v[:, :, None, None]
        out[n] = v.clone()
    return out
