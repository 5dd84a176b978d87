"""Golden file for tms: losses, gradients and AdamW steps of the four models, from PyTorch.

For each model kind (linear, relu-output, relu-hidden, abs) on a small fixed problem
(n = 5 features, m = 2 hidden dimensions, 2 instances, a batch of 8 rows), this computes in
float32 with torch autograd:

  * the loss of each instance: the mean over rows and features of I_i (|x_i| - out_i)^2
    (the notebook's loss; the total loss is the sum over instances), with I_i = 0.9^i;
  * its gradient with respect to W, b (and W_dec for `abs`);
  * the parameters after one and after two `torch.optim.AdamW` steps (lr 0.01, betas (0.9,
    0.999), eps 1e-8, weight decay 0.01), with the loss and gradient at the start of each step;

and writes them to tests/data/golden_torch.json, which tests/golden.rs checks tms against.

The models, as in src/model.rs (W and W_dec are [instances, features, hidden]: row i is
feature i's direction; b is [instances, features]):

  linear       h = W x          out = W^T h + b
  relu-output  h = W x          out = ReLU(W^T h + b)
  relu-hidden  h = ReLU(W x)    out = ReLU(W^T h + b)
  abs          h = ReLU(W x)    out = ReLU(W_dec h + b), target |x|, inputs in [-1, 1]

Inputs and initial parameters come from numpy with fixed seeds, rounded to 3 decimals so that
the file is easy to read. For each kind the script takes the first seed whose problem exercises
every ReLU mask: every ReLU is active for some rows and inactive for others, no pre-activation
is within 1e-3 of the kink (so float rounding cannot flip a mask), and every gradient has
nonzero entries, none of them tiny (Adam's first step is nearly sign(g)).

Not run in CI. To regenerate the file:

    python3 -m venv /tmp/golden-venv && /tmp/golden-venv/bin/pip install torch numpy && /tmp/golden-venv/bin/python bench/golden.py
"""

import json
import pathlib
import re

import numpy as np
import torch

N, M, INSTANCES, ROWS = 5, 2, 2, 8
PRESENT = 0.6  # probability that a feature is nonzero in a row
ADAMW = {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01}
STEPS = 2
KINDS = ["linear", "relu-output", "relu-hidden", "abs"]
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "golden_torch.json"

importance = torch.tensor([0.9**i for i in range(N)], dtype=torch.float32)


def problem(kind, seed):
    """Inputs x [instances, rows, features] and initial parameters, as float32 numpy arrays."""
    rng = np.random.default_rng(seed)
    low = -1.0 if kind == "abs" else 0.0
    values = rng.uniform(low, 1.0, (INSTANCES, ROWS, N))
    present = rng.uniform(0.0, 1.0, (INSTANCES, ROWS, N)) < PRESENT
    x = np.where(present, values, 0.0)
    params = {"W": rng.normal(0.0, 0.5, (INSTANCES, N, M))}
    if kind == "abs":
        params["W_dec"] = rng.normal(0.0, 0.5, (INSTANCES, N, M))
    params["b"] = rng.normal(0.0, 0.3, (INSTANCES, N))
    return f32(x), {k: f32(v) for k, v in params.items()}


def f32(a):
    """Rounded to 3 decimals, as float32."""
    return np.round(a, 3).astype(np.float32)


def forward(kind, x, p):
    """Per-instance loss [instances] and the hidden and output pre-activations."""
    h_pre = torch.einsum("irf,ifh->irh", x, p["W"])
    h = torch.relu(h_pre) if kind in ("relu-hidden", "abs") else h_pre
    decoder = p["W_dec"] if kind == "abs" else p["W"]
    out_pre = torch.einsum("irh,ifh->irf", h, decoder) + p["b"][:, None, :]
    out = out_pre if kind == "linear" else torch.relu(out_pre)
    loss = (importance * (x.abs() - out) ** 2).mean(dim=(1, 2))
    return loss, h_pre, out_pre


def mixed(pre, axis):
    """Each slice along `axis` has a clearly positive and a clearly negative entry, and no
    entry is near the kink (exact zeros, from all-zero input rows, are the same everywhere)."""
    near = (pre.abs() < 1e-3) & (pre != 0)
    return bool((pre > 0).any(axis).all() and (pre < 0).any(axis).all() and not near.any())


def run(kind, x, params):
    """Two AdamW steps; returns the loss, gradient and parameters after each step, and whether
    the problem exercises every mask and every gradient."""
    x = torch.tensor(x)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.AdamW(
        list(p.values()),
        lr=ADAMW["lr"],
        betas=tuple(ADAMW["betas"]),
        eps=ADAMW["eps"],
        weight_decay=ADAMW["weight_decay"],
    )
    steps, good = [], True
    for t in range(1, STEPS + 1):
        opt.zero_grad()
        loss, h_pre, out_pre = forward(kind, x, p)
        loss.sum().backward()
        if kind in ("relu-hidden", "abs"):
            good &= mixed(h_pre.detach(), axis=1)  # per instance and hidden unit, over rows
        if kind != "linear":
            good &= mixed(out_pre.detach().flatten(1), axis=1)  # per instance
        for v in p.values():
            g = v.grad.flatten(1).abs()  # [instances, ...]
            top = g.max(dim=1, keepdim=True).values
            good &= bool((top > 0).all() and not ((g > 0) & (g < 1e-3 * top)).any())
        grad = {k: v.grad.clone() for k, v in p.items()}
        opt.step()
        after = {k: v.detach().clone() for k, v in p.items()}
        steps.append({"t": t, "loss": loss.detach(), "grad": grad, "after": after})
    return steps, good


def short(a):
    """Nested lists of the shortest decimals that give back the same float32 values."""
    a = np.asarray(a, dtype=np.float32)
    return float(str(a)) if a.ndim == 0 else [short(v) for v in a]


def as_json(tensors):
    return {k: short(v) for k, v in tensors.items()}


def case(kind):
    for seed in range(1000):
        x, params = problem(kind, seed)
        steps, good = run(kind, x, params)
        if good:
            break
    else:
        raise SystemExit(f"{kind}: no seed below 1000 exercises every mask")
    return {
        "kind": kind,
        "seed": seed,
        "n": N,
        "m": M,
        "instances": INSTANCES,
        "rows": ROWS,
        "importance": short(importance),
        "x": short(x),  # [instance][row][feature]
        "params": as_json(params),
        "steps": [
            {
                "t": s["t"],
                "loss": short(s["loss"]),  # per instance, at the parameters before the step
                "grad": as_json(s["grad"]),  # of the summed loss, at the same parameters
                "after": as_json(s["after"]),  # parameters after the step
            }
            for s in steps
        ],
    }


def main():
    torch.use_deterministic_algorithms(True)
    golden = {
        "about": "tms golden file: loss, gradients and AdamW steps from PyTorch (bench/golden.py)",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "dtype": "float32",
        "loss": "per instance: mean over rows and features of importance * (|x| - out)^2",
        "layout": "x [instance][row][feature]; W, W_dec [instance][feature][hidden]; b [instance][feature]",
        "adamw": ADAMW,
        "cases": [case(kind) for kind in KINDS],
    }
    text = json.dumps(golden, indent=1)
    # One line per innermost list of numbers.
    text = re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m[1]) + "]", text)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text + "\n")
    for c in golden["cases"]:
        print(f"{c['kind']:12} seed {c['seed']:3}  loss {c['steps'][0]['loss']}")
    print(f"wrote {OUT} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
