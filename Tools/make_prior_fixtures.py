"""Small random-weight MaskGIT priors and reference outputs for the Swift
tests: transformer logits, and the official sampling loop replayed with
recorded uniforms (so Swift must match it step by step).
Output: Tests/MoVQTests/Fixtures/prior_<name>/.

Run: $(Tools/setup_venv.sh) Tools/make_prior_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from maskgit_reference import MaskGITTransformer, default_config, parallel_decode

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "MoVQTests", "Fixtures")

CASES = {
    "post_ln": default_config(),
    "pre_rms_geglu": default_config(codes=11, channels=1, height=2, width=3, classes=3, hidden=16, heads=2,
                                    layers=2, mlp=20, norm="rmsnorm", norm_position="pre", activation="geglu",
                                    norm_eps=1e-6),
}


def main():
    for i, (name, c) in enumerate(CASES.items()):
        torch.manual_seed(10 + i)
        m = MaskGITTransformer(c).eval()
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if p.dim() == 1 and p.shape[0] == c["hidden"] else 0.0) * 0)
        d = os.path.join(OUT, f"prior_{name}")
        os.makedirs(d, exist_ok=True)
        torch.save({k: v.contiguous() for k, v in m.state_dict().items()}, os.path.join(d, "prior.pt"))
        with open(os.path.join(d, "prior.json"), "w") as f:
            json.dump(c, f, indent=1, sort_keys=True)
        n, k, ch = c["height"] * c["width"], c["codes"], c["channels"]
        rng = np.random.default_rng(20 + i)
        tokens = rng.integers(0, k + 1, size=(2, n, ch))
        tokens[..., 1:] = np.where(tokens[..., :1] == k, k, tokens[..., 1:])  # a position is masked in all channels or none
        classes = np.array([1, c["classes"]])  # one conditional, one unconditional
        with torch.no_grad():
            logits = m(torch.from_numpy(tokens), torch.from_numpy(classes)).numpy()
        np.save(os.path.join(d, "tokens.npy"), tokens)
        np.save(os.path.join(d, "classes.npy"), classes)
        np.save(os.path.join(d, "logits.npy"), logits.astype(np.float32))

        # Sampling replay: image 0 class 2 with guidance 2.5 from all-MASK; image 1 unconditional, some tokens given.
        steps, temperature, choice_t, sched = 6, 1.3, 4.5, "cosine"
        start = np.full((2, n, ch), k)
        start[1, : n // 3] = rng.integers(0, k, size=(n // 3, ch))
        spec = [(2, 2.5), (c["classes"], 0.0)]
        u_sample = rng.random((2, steps, n, ch)).astype(np.float64)
        u_gumbel = rng.random((2, steps, n)).astype(np.float64)
        outs, recorded = [], []
        for b in range(2):
            cls, scale = spec[b]
            seen = []

            def logits_fn(cur, cls=cls, scale=scale, seen=seen):
                with torch.no_grad():
                    t = torch.from_numpy(np.stack([cur, cur]))
                    both = m(t, torch.tensor([cls, c["classes"]])).numpy()
                g = both[0] if scale == 0 else both[1] + np.float32(scale) * (both[0] - both[1])
                seen.append(g.astype(np.float32))
                return g.astype(np.float32)

            outs.append(parallel_decode(logits_fn, start[b], k, steps, lambda t, b=b: (u_sample[b, t], u_gumbel[b, t]),
                                        temperature, choice_t, sched))
            recorded.append(np.stack(seen))
        np.save(os.path.join(d, "sample_start.npy"), start)
        np.save(os.path.join(d, "sample_u.npy"), u_sample)
        np.save(os.path.join(d, "sample_gumbel_u.npy"), u_gumbel)
        np.save(os.path.join(d, "sample_steps.npy"), np.stack(outs))          # [B, T, N, c]
        np.save(os.path.join(d, "sample_logits.npy"), np.stack(recorded))     # [B, T, N, c, K]
        with open(os.path.join(d, "sample.json"), "w") as f:
            json.dump(dict(steps=steps, temperature=temperature, choice_temperature=choice_t, schedule=sched,
                           classes=[s[0] for s in spec], guidance=[s[1] for s in spec]), f, indent=1, sort_keys=True)
        print("wrote", d)
    make_gpt_fixture()



def make_gpt_fixture():
    from maskgit_reference import GPTPrior, ar_sample
    c = default_config(codes=13, channels=2, height=2, width=3, classes=4, hidden=24, heads=3, layers=2, mlp=40,
                       norm_eps=1e-6)
    c["norm_position"] = "pre"
    torch.manual_seed(30)
    m = GPTPrior(c).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    d = os.path.join(OUT, "prior_gpt")
    os.makedirs(d, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in m.state_dict().items()}, os.path.join(d, "prior.pt"))
    with open(os.path.join(d, "prior.json"), "w") as f:
        json.dump(dict(c, kind="gpt"), f, indent=1, sort_keys=True)
    length = c["height"] * c["width"] * c["channels"]
    rng = np.random.default_rng(31)
    tokens = rng.integers(0, c["codes"], size=(2, length))
    classes = np.array([2, c["classes"]])
    with torch.no_grad():
        logits = m(torch.from_numpy(tokens), torch.from_numpy(classes)).numpy()
    np.save(os.path.join(d, "tokens.npy"), tokens)
    np.save(os.path.join(d, "classes.npy"), classes)
    np.save(os.path.join(d, "logits.npy"), logits.astype(np.float32))  # [B, L + 1, K]
    settings = [(1.0, 0, 1.0), (0.8, 5, 0.9)]  # (temperature, top_k, top_p) per image
    u = rng.random((2, length))
    outs = []
    for b in range(2):
        def step_logits(prefix, b=b):
            with torch.no_grad():
                t = torch.tensor([prefix], dtype=torch.long).reshape(1, -1)
                return m(t, torch.tensor([classes[b]]))[0, -1].numpy()
        outs.append(ar_sample(step_logits, length, *settings[b], lambda t, b=b: u[b, t]))
    np.save(os.path.join(d, "sample_u.npy"), u)
    np.save(os.path.join(d, "sample_tokens.npy"), np.stack(outs))
    with open(os.path.join(d, "sample.json"), "w") as f:
        json.dump(dict(temperature=[s[0] for s in settings], top_k=[s[1] for s in settings], top_p=[s[2] for s in settings]), f)
    print("wrote", d)


if __name__ == "__main__":
    main()
