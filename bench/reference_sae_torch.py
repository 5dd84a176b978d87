"""PyTorch reference for the tms SAE: trains one sparse autoencoder on synthetic ground-truth data,
eager, on the CPU, and reports the speed.

Usage:

    python bench/reference_sae_torch.py [--kind l1|topk] [--k 32] [--alpha 0.01]
        [--features 512] [--dim 256] [--latents 1024] [--batch 1024]
        [--steps 200] [--warmup 20] [--threads N] [--seed 0]

prints one JSON line, as bench/reference_torch.py does: seconds, steps_per_second, final_loss
(mean over the last 10% of the timed steps), threads, version, plus the settings used.

Data (sampled fresh every step, in torch, inside the timed loop -- the timing covers data
generation, forward, backward, the Adam step and the renormalisation): G ground-truth directions F
[G, d], Gaussian rows normalised to unit length (fixed seed); feature g is active in a row with
probability p_g = min(1, c * 0.99^g), c chosen so that sum_g p_g = 5 (5 active features per row on
average); an active feature's coefficient is U[0, 1), an inactive one's 0; x = coeffs @ F.

SAE (the math of src/sae/, SAELens layout W_enc [d, D], b_enc [D], W_dec [D, d], b_dec [d]):

    pre = (x - b_dec) @ W_enc + b_enc
    c   = ReLU(pre)                                  (l1)
    c   = ReLU(pre) on the k largest pre of the row, 0 elsewhere          (topk)
    x_hat = c @ W_dec + b_dec
    L = mean_r ||x_hat_r - x_r||^2 + alpha * mean_r sum_j c_rj ||W_dec_j||   (alpha = 0 for topk)

Init: W_dec rows Gaussian normalised to unit length, W_enc = W_dec^T, biases 0. Optimiser
torch.optim.Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-8); after every step each row of W_dec is
renormalised to unit norm under torch.no_grad(). The first --warmup steps are not timed.
"""

import argparse
import json
import os
import time

import torch

ACTIVE_PER_ROW = 5.0
DECAY = 0.99


def probabilities(g):
    """p_g = min(1, c * 0.99^g) with sum_g p_g = ACTIVE_PER_ROW (c by bisection; if
    ACTIVE_PER_ROW >= g every feature is always active)."""
    base = torch.tensor([DECAY**i for i in range(g)], dtype=torch.float64)
    if ACTIVE_PER_ROW >= g:
        return torch.ones(g)
    lo, hi = 0.0, 1.0 / base[-1].item()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (mid * base).clamp(max=1.0).sum().item() < ACTIVE_PER_ROW:
            lo = mid
        else:
            hi = mid
    return (hi * base).clamp(max=1.0).float()


def unit_rows(shape, generator):
    w = torch.randn(*shape, generator=generator)
    return w / w.norm(dim=1, keepdim=True)


def train(a):
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(a.seed)
    features = unit_rows((a.features, a.dim), gen)  # F [G, d]
    p = probabilities(a.features)  # [G]

    W_dec = torch.nn.Parameter(unit_rows((a.latents, a.dim), gen))  # [D, d]
    W_enc = torch.nn.Parameter(W_dec.detach().t().clone())  # [d, D]
    b_enc = torch.nn.Parameter(torch.zeros(a.latents))
    b_dec = torch.nn.Parameter(torch.zeros(a.dim))
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    alpha = 0.0 if a.kind == "topk" else a.alpha
    torch.manual_seed(a.seed + 1)

    def step():
        active = torch.rand(a.batch, a.features) < p
        coeffs = torch.where(active, torch.rand(a.batch, a.features), torch.zeros(()))
        x = coeffs @ features
        pre = (x - b_dec) @ W_enc + b_enc
        if a.kind == "topk":
            top = pre.topk(a.k, dim=1)
            codes = torch.zeros_like(pre).scatter(1, top.indices, torch.relu(top.values))
        else:
            codes = torch.relu(pre)
        x_hat = codes @ W_dec + b_dec
        loss = ((x_hat - x) ** 2).sum(dim=1).mean()
        if alpha:
            loss = loss + alpha * (codes * W_dec.norm(dim=1)).sum(dim=1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))
        return loss.detach()

    for _ in range(a.warmup):
        step()
    losses = []
    start = time.perf_counter()
    for _ in range(a.steps):
        losses.append(step())
    seconds = time.perf_counter() - start

    tail = torch.stack(losses[-max(1, len(losses) // 10):])  # last 10% of the steps
    return {
        "seconds": seconds,
        "steps_per_second": a.steps / seconds,
        "final_loss": float(tail.mean()),
        "threads": torch.get_num_threads(),
        "version": torch.__version__,
        "kind": a.kind,
        "k": a.k if a.kind == "topk" else None,
        "alpha": alpha,
        "features": a.features,
        "dim": a.dim,
        "latents": a.latents,
        "batch": a.batch,
        "steps": a.steps,
        "warmup": a.warmup,
    }


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", choices=["l1", "topk"], default="l1")
    ap.add_argument("--k", type=int, default=32, help="active latents per row (topk)")
    ap.add_argument("--alpha", type=float, default=1e-2, help="L1 coefficient (l1)")
    ap.add_argument("--features", type=int, default=512, help="ground-truth directions G")
    ap.add_argument("--dim", type=int, default=256, help="input dimension d")
    ap.add_argument("--latents", type=int, default=1024, help="dictionary size D")
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=200, help="timed steps")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps before the timed ones")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.kind == "topk" and not 0 < a.k <= a.latents:
        ap.error("--k must be in 1..=latents")
    return a


if __name__ == "__main__":
    print(json.dumps(train(parse())))
