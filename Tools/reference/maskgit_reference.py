"""Reference MaskGIT prior (PyTorch) and the official sampling loop (NumPy),
the behaviour the Swift runtime reproduces (Docs/MASKGIT.md).

Transformer ("MaskGIT layout", BERT-style; knobs for pre-LN / RMSNorm / GEGLU):
  sequence = [class token] + N positions (raster order), hidden d, H heads.
  input     x = sum_ch tok_emb.<ch>[token[ch]] + pos_emb[p]   (class: cls_emb[class] + pos_emb[0])
            post-LN: x = emb_ln(x)
  layer     post-LN: x = ln1(x + attn(x)); x = ln2(x + mlp(x))
            pre-LN:  x = x + attn(ln1(x)); x = x + mlp(ln2(x))   (then final_ln after the last layer)
  attn      qkv = Linear(d, 3d); softmax(q k^T / sqrt(d/H)) v per head; out = Linear(d, d)
  mlp       gelu: fc2(gelu(fc1(x)));  geglu: a, g = fc1(x).chunk(2); fc2(a * gelu(g))
  head      h = head.ln(gelu(head.dense(x))); logits[ch] = h @ tok_emb.<ch>[:K]^T + head.bias.<ch>
  GELU is the tanh form; norms are LayerNorm (weight, bias) or RMSNorm (weight).
Token ids per channel: 0..K-1 codes, K = MASK. Class ids 0..classes-1, `classes` = unconditional.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def default_config(**kw):
    c = dict(codes=16, channels=2, height=3, width=4, classes=5, hidden=24, heads=3, layers=2, mlp=40,
             norm="layernorm", norm_position="post", activation="gelu", norm_eps=1e-12)
    c.update(kw)
    return c


def gelu(x):
    return F.gelu(x, approximate="tanh")


class Norm(nn.Module):
    def __init__(self, d, kind, eps):
        super().__init__()
        self.kind, self.eps = kind, eps
        self.weight = nn.Parameter(torch.ones(d))
        if kind == "layernorm":
            self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        if self.kind == "layernorm":
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, m = c["hidden"], c["mlp"]
        self.c = c
        self.attn = nn.ModuleDict(dict(qkv=nn.Linear(d, 3 * d), out=nn.Linear(d, d)))
        self.mlp = nn.ModuleDict(dict(fc1=nn.Linear(d, 2 * m if c["activation"] == "geglu" else m), fc2=nn.Linear(m, d)))
        self.ln1, self.ln2 = Norm(d, c["norm"], c["norm_eps"]), Norm(d, c["norm"], c["norm_eps"])

    def attention(self, x):
        b, s, d = x.shape
        h = self.c["heads"]
        q, k, v = self.attn["qkv"](x).view(b, s, 3, h, d // h).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1) @ v
        return self.attn["out"](a.transpose(1, 2).reshape(b, s, d))

    def feed_forward(self, x):
        y = self.mlp["fc1"](x)
        if self.c["activation"] == "geglu":
            a, g = y.chunk(2, dim=-1)
            y = a * gelu(g)
        else:
            y = gelu(y)
        return self.mlp["fc2"](y)

    def forward(self, x):
        if self.c["norm_position"] == "post":
            x = self.ln1(x + self.attention(x))
            return self.ln2(x + self.feed_forward(x))
        x = x + self.attention(self.ln1(x))
        return x + self.feed_forward(self.ln2(x))


class MaskGITTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d, n = c["hidden"], c["height"] * c["width"]
        self.tok_emb = nn.ModuleList([nn.Embedding(c["codes"] + 1, d) for _ in range(c["channels"])])
        self.cls_emb = nn.Embedding(c["classes"] + 1, d)
        self.pos_emb = nn.Parameter(torch.randn(n + 1, d) * 0.02)
        if c["norm_position"] == "post":
            self.emb_ln = Norm(d, c["norm"], c["norm_eps"])
        else:
            self.final_ln = Norm(d, c["norm"], c["norm_eps"])
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["layers"])])
        self.head = nn.ModuleDict(dict(dense=nn.Linear(d, d), ln=Norm(d, c["norm"], c["norm_eps"])))
        self.head_bias = nn.ParameterList([nn.Parameter(torch.zeros(c["codes"])) for _ in range(c["channels"])])

    def forward(self, tokens, classes):
        """tokens: [B, N, c] int64 (K = MASK); classes: [B] -> logits [B, N, c, K]."""
        x = sum(self.tok_emb[ch](tokens[..., ch]) for ch in range(self.c["channels"]))
        x = torch.cat([self.cls_emb(classes)[:, None], x], dim=1) + self.pos_emb
        if self.c["norm_position"] == "post":
            x = self.emb_ln(x)
        for layer in self.layers:
            x = layer(x)
        if self.c["norm_position"] != "post":
            x = self.final_ln(x)
        h = self.head["ln"](gelu(self.head["dense"](x[:, 1:])))
        k = self.c["codes"]
        return torch.stack([h @ self.tok_emb[ch].weight[:k].T + self.head_bias[ch] for ch in range(self.c["channels"])], dim=2)


def schedule(name, r, n0):
    """Mask ratio gamma(r), clipped to [1e-6, 1] in float32 (official mask_schedule)."""
    r = np.float32(r)
    if name == "cosine":
        g = np.cos(np.float32(math.pi / 2) * r)
    elif name == "linear":
        g = 1 - r
    elif name.startswith("pow"):
        g = 1 - r ** np.float32(float(name[3:]))
    elif name == "log":
        g = -np.log2(r) / np.log2(np.float32(n0))
    elif name == "exp":
        g = 1 - np.exp2(-np.log2(np.float32(n0)) * (1 - r))
    else:
        raise ValueError(name)
    return np.float32(np.clip(g, 1e-6, 1.0))


def log_softmax(x):
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def parallel_decode(logits_fn, tokens, codes, steps, uniforms, temperature=1.0, choice_temperature=4.5,
                    schedule_name="cosine"):
    """The official MaskGIT loop for one image.

    tokens: [N, c] int (codes, or `codes` = MASK); logits_fn(tokens) -> [N, c, K] float32.
    uniforms(step) -> (u_sample [N, c], u_gumbel [N]) in (0, 1): the draws of that step.
    Returns the tokens recorded at every step ([steps, N, c]) and the last step's logits.
    """
    cur = tokens.copy()
    n0 = int((cur[:, 0] == codes).sum())
    outputs = []
    for t in range(steps):
        logits = logits_fn(cur).astype(np.float32) / np.float32(temperature)
        logp = log_softmax(logits.astype(np.float64)).astype(np.float32)
        u, ug = uniforms(t)
        # Categorical by inverse CDF over the probabilities, in code order.
        cdf = np.cumsum(np.exp(logp.astype(np.float64)), axis=-1)
        sampled = np.minimum((cdf < u[..., None] * cdf[..., -1:]).sum(-1), codes - 1)
        unknown = cur[:, 0] == codes
        sampled = np.where(unknown[:, None], sampled, cur)
        outputs.append(sampled.copy())
        r = (t + 1) / steps
        mask_len = np.floor(np.float32(n0) * schedule(schedule_name, r, n0))
        mask_len = int(max(1, min(int(unknown.sum()) - 1, mask_len)))
        conf = np.take_along_axis(logp, sampled[..., None], -1)[..., 0].sum(-1).astype(np.float32)
        gumbel = -np.log(-np.log(ug.astype(np.float64))).astype(np.float32)
        conf = conf + np.float32(choice_temperature * (1 - r)) * gumbel
        conf = np.where(unknown, conf, np.float32(np.inf))
        cutoff = np.sort(conf)[mask_len]
        cur = np.where((conf < cutoff)[:, None], codes, sampled)
    return np.stack(outputs)


# ---------------------------------------------------------------------------
# Autoregressive option: a raster-order GPT prior (pre-LN, causal attention).
# Sequence = [class token] + L = N * c tokens in (position, channel) order;
# the output at sequence index t predicts token t. Head: Linear(d, K), untied.
# Tensors: tok_emb.weight [K, d], cls_emb.weight [classes+1, d], pos_emb [L+1, d],
# layers.* as above (norm_position "pre"), final_ln.*, head.weight [K, d], head.bias [K].

class GPTPrior(nn.Module):
    def __init__(self, c):
        super().__init__()
        c = dict(c, norm_position="pre")
        self.c = c
        d, length = c["hidden"], c["height"] * c["width"] * c["channels"]
        self.tok_emb = nn.Embedding(c["codes"], d)
        self.cls_emb = nn.Embedding(c["classes"] + 1, d)
        self.pos_emb = nn.Parameter(torch.randn(length + 1, d) * 0.02)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c["layers"])])
        for layer in self.layers:
            layer.causal = True
        self.final_ln = Norm(d, c["norm"], c["norm_eps"])
        self.head = nn.Linear(d, c["codes"])

    def forward(self, tokens, classes):
        """tokens [B, T] (T <= L), classes [B] -> logits [B, T + 1, K] (index t predicts token t)."""
        x = torch.cat([self.cls_emb(classes)[:, None], self.tok_emb(tokens)], dim=1)
        x = x + self.pos_emb[: x.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.head(self.final_ln(x))


def _causal_attention(self, x):
    b, s, d = x.shape
    h = self.c["heads"]
    q, k, v = self.attn["qkv"](x).view(b, s, 3, h, d // h).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
    if getattr(self, "causal", False):
        scores = scores.masked_fill(torch.ones(s, s, dtype=torch.bool).triu(1), float("-inf"))
    a = torch.softmax(scores, dim=-1) @ v
    return self.attn["out"](a.transpose(1, 2).reshape(b, s, d))


Layer.attention = _causal_attention


def filter_logits(logits, temperature, top_k, top_p):
    """log-probabilities after temperature, top-k and top-p (float64; -inf = removed).
    top-k keeps the k largest (ties at the k-th value kept); top-p keeps the
    smallest prefix of the descending order whose mass reaches p (at least one)."""
    x = logits.astype(np.float32).astype(np.float64) / temperature
    if top_k and top_k < len(x):
        kth = np.sort(x)[-top_k]
        x = np.where(x < kth, -np.inf, x)
    if top_p < 1:
        p = np.exp(x - x.max())
        p /= p.sum()
        order = np.argsort(-x, kind="stable")
        cum = np.cumsum(p[order])
        keep = np.zeros(len(x), bool)
        keep[order[: int(np.searchsorted(cum, top_p) + 1)]] = True
        x = np.where(keep, x, -np.inf)
    return x


def ar_sample(step_logits, length, temperature, top_k, top_p, uniforms):
    """Raster-order sampling for one image: step_logits(prefix) -> [K] logits
    for the next token; uniforms(t) -> u in (0, 1). Returns the L tokens."""
    out = []
    for t in range(length):
        x = filter_logits(step_logits(out), temperature, top_k, top_p)
        p = np.exp(x - x.max())
        cdf = np.cumsum(p)
        out.append(int(min((cdf < uniforms(t) * cdf[-1]).sum(), len(x) - 1)))
    return np.array(out)
