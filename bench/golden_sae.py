"""Golden file for the tms SAE: forward pass, loss, gradients and Adam steps, from PyTorch.

For each SAE kind -- "l1" (alpha = 0.05) and "topk" (k = 2, alpha = 0) -- on a small fixed
problem (d = 4 input dimensions, D = 6 latents, a batch of B = 8 rows), this computes in float32
with torch autograd the SAE math of src/sae/ (W_enc [d, D], b_enc [D], W_dec [D, d],
b_dec [d], the SAELens names and layout):

  x_c   = x - b_dec
  pre   = x_c @ W_enc + b_enc
  c     = ReLU(pre)                              (l1)
  c_j   = ReLU(pre_j) if j is among the k largest pre of the row, else 0   (topk; ties: lower
                                                                             index wins)
  x_hat = c @ W_dec + b_dec
  L     = (1/B) sum_r ||x_hat_r - x_r||^2 + alpha (1/B) sum_r sum_j c_rj ||W_dec_j||

(the gradient of the ||W_dec_j|| factor is part of the gradient w.r.t. W_dec), and records

  * the codes c and the reconstruction x_hat at the initial parameters;
  * the loss and its gradient w.r.t. all four parameters at the start of each of two steps;
  * the parameters after each step: one torch.optim.Adam step (lr 0.01, betas (0.9, 0.999),
    eps 1e-8, no weight decay) followed, under torch.no_grad(), by renormalising every row of
    W_dec to unit L2 norm (the Adam state is not touched by the renormalisation).

Inputs and initial parameters come from numpy with fixed seeds, rounded to 3 decimals so that the
file is easy to read -- except W_dec, whose rows are rounded to 3 decimals and then renormalised
to unit norm in float32; the file holds those renormalised values, exactly as given to the model.
For each kind the script takes the first seed whose problem is robust and exercises everything,
at the start of both steps:

  * no pre-activation is within 1e-3 of 0 (float rounding cannot flip a ReLU);
  * topk: in every row the k-th and (k+1)-th largest pre differ by more than 1e-3 (float
    rounding cannot change the selection);
  * every latent's code is positive in some rows and zero in others;
  * every gradient has nonzero entries and none of them is tiny (< 1e-3 of the largest entry of
    the same parameter: Adam's first step is nearly lr * sign(g), so a tiny g would make it
    fragile).

JSON layout (all arrays are flat, row-major lists of float32 values, written as the shortest
decimals that give back the same float32):

  {"description": str, "torch_version": str, "numpy_version": str,
   "adam": {"lr", "betas", "eps"},
   "cases": [{
     "kind": "l1" | "topk", "alpha": float (0.0 for topk), "k": int | null, "seed": int,
     "d": 4, "D": 6, "rows": 8,
     "x": [rows*d],
     "init": {"W_enc": [d*D], "b_enc": [D], "W_dec": [D*d], "b_dec": [d]},
     "codes": [rows*D],  "x_hat": [rows*d],           (at the initial parameters)
     "steps": [{"t": 1 | 2,
                "loss": float,                        (at the parameters before the step)
                "grad": {"W_enc", "b_enc", "W_dec", "b_dec"},   (same parameters)
                "after": {"W_enc", "b_enc", "W_dec", "b_dec"}}, ...]   (after Adam + renorm)
   }, ...]}

Not run in CI. To regenerate tests/data/golden_sae.json:

    python3 -m venv /tmp/golden-venv && /tmp/golden-venv/bin/pip install torch numpy && /tmp/golden-venv/bin/python bench/golden_sae.py
"""

import json
import pathlib
import re

import numpy as np
import torch

D_IN, D_SAE, ROWS = 4, 6, 8
ADAM = {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8}
STEPS = 2
CASES = [("l1", 0.05, None), ("topk", 0.0, 2)]
NAMES = ["W_enc", "b_enc", "W_dec", "b_dec"]
KINK = 1e-3  # minimum distance of a pre-activation from 0, and of the k-th from the (k+1)-th
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "golden_sae.json"


def f32(a):
    """Rounded to 3 decimals, as float32 (+ 0.0 turns a rounded -0.0 into 0.0)."""
    return (np.round(a, 3) + 0.0).astype(np.float32)


def problem(seed):
    """Inputs x [rows, d] and initial parameters, as float32 numpy arrays."""
    rng = np.random.default_rng(seed)
    x = f32(rng.uniform(-1.0, 1.0, (ROWS, D_IN)))
    w_dec = f32(rng.normal(0.0, 1.0, (D_SAE, D_IN)))
    w_dec = w_dec / np.sqrt((w_dec * w_dec).sum(axis=1, keepdims=True, dtype=np.float32))
    params = {
        "W_enc": f32(rng.normal(0.0, 0.6, (D_IN, D_SAE))),
        "b_enc": f32(rng.normal(0.0, 0.2, D_SAE)),
        "W_dec": w_dec.astype(np.float32),
        "b_dec": f32(rng.normal(0.0, 0.2, D_IN)),
    }
    return x, params


def forward(kind, alpha, k, x, p):
    """Loss, pre-activations [rows, D], codes [rows, D] and x_hat [rows, d]."""
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    codes = torch.relu(pre)
    if kind == "topk":
        # Stable descending sort: among equal values the lower index comes first.
        order = torch.sort(pre.detach(), dim=1, descending=True, stable=True).indices
        keep = torch.zeros_like(pre, dtype=torch.bool).scatter_(1, order[:, :k], True)
        codes = torch.where(keep, codes, torch.zeros(()))
    x_hat = codes @ p["W_dec"] + p["b_dec"]
    loss = ((x_hat - x) ** 2).sum(dim=1).mean()
    if alpha:
        loss = loss + alpha * (codes * p["W_dec"].norm(dim=1)).sum(dim=1).mean()
    return loss, pre, codes, x_hat


def robust(kind, k, pre, codes):
    """No ReLU or top-k selection can flip under float rounding, and every latent is active in
    some rows and inactive in others."""
    good = not bool((pre.abs() < KINK).any())
    if kind == "topk":
        top = torch.sort(pre, dim=1, descending=True).values
        good &= bool(((top[:, k - 1] - top[:, k]) > KINK).all())
    active = codes > 0
    good &= bool(active.any(dim=0).all() and (~active).any(dim=0).all())
    return good


def run(kind, alpha, k, x, params):
    """Two Adam steps, each followed by the W_dec row renormalisation. Returns the codes and
    x_hat at the initial parameters, the loss, gradient and parameters after each step, and
    whether the problem is robust and exercises everything."""
    x = torch.tensor(x)
    p = {n: torch.tensor(params[n], requires_grad=True) for n in NAMES}
    opt = torch.optim.Adam(
        [p[n] for n in NAMES], lr=ADAM["lr"], betas=tuple(ADAM["betas"]), eps=ADAM["eps"]
    )
    steps, good, first = [], True, None
    for t in range(1, STEPS + 1):
        opt.zero_grad()
        loss, pre, codes, x_hat = forward(kind, alpha, k, x, p)
        if first is None:
            first = (codes.detach().clone(), x_hat.detach().clone())
        loss.backward()
        good &= robust(kind, k, pre.detach(), codes.detach())
        for v in p.values():
            g = v.grad.abs().flatten()
            top = g.max()
            good &= bool(top > 0 and not ((g > 0) & (g < 1e-3 * top)).any())
        grad = {n: p[n].grad.clone() for n in NAMES}
        opt.step()
        with torch.no_grad():
            p["W_dec"].div_(p["W_dec"].norm(dim=1, keepdim=True))
        after = {n: p[n].detach().clone() for n in NAMES}
        steps.append({"t": t, "loss": loss.detach(), "grad": grad, "after": after})
    return first, steps, good


def flat(a):
    """A flat list of the shortest decimals that give back the same float32 values (a float for
    a scalar)."""
    a = np.asarray(a, dtype=np.float32)
    return float(str(a)) if a.ndim == 0 else [float(str(v)) for v in a.reshape(-1)]


def as_json(tensors):
    return {n: flat(tensors[n]) for n in NAMES}


def case(kind, alpha, k):
    for seed in range(10000):
        x, params = problem(seed)
        (codes, x_hat), steps, good = run(kind, alpha, k, x, params)
        if good:
            break
    else:
        raise SystemExit(f"{kind}: no seed below 10000 gives a robust problem")
    return {
        "kind": kind,
        "alpha": alpha,
        "k": k,
        "seed": seed,
        "d": D_IN,
        "D": D_SAE,
        "rows": ROWS,
        "x": flat(x),
        "init": as_json(params),
        "codes": flat(codes),
        "x_hat": flat(x_hat),
        "steps": [
            {"t": s["t"], "loss": flat(s["loss"]), "grad": as_json(s["grad"]), "after": as_json(s["after"])}
            for s in steps
        ],
    }


def main():
    torch.use_deterministic_algorithms(True)
    golden = {
        "description": (
            "tms SAE golden file (bench/golden_sae.py): codes, x_hat, loss, gradients and two "
            "torch.optim.Adam steps (each followed by W_dec row renormalisation), float32; "
            "arrays are flat row-major: x [rows,d], W_enc [d,D], b_enc [D], W_dec [D,d], "
            "b_dec [d], codes [rows,D], x_hat [rows,d]"
        ),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "adam": ADAM,
        "cases": [case(*c) for c in CASES],
    }
    text = json.dumps(golden, indent=1)
    # One line per list of numbers.
    text = re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m[1]) + "]", text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text + "\n")
    for c in golden["cases"]:
        print(f"{c['kind']:5} seed {c['seed']:4}  loss {c['steps'][0]['loss']} -> {c['steps'][1]['loss']}")
    print(f"wrote {OUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
