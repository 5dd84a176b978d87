"""PyTorch reference: the notebook's training loop, eager, on the CPU.

Usage: python reference_torch.py CONFIG.json  ->  prints one JSON line with the timing and loss.
"""

import json
import sys
import time

import torch


def train(c, seed=0):
    torch.manual_seed(seed)
    n, m, inst, batch = c["n"], c["m"], c["instances"], c["batch"]
    importance = torch.tensor(c["importance"], dtype=torch.float32)  # [inst, n]
    probability = torch.tensor(c["probability"], dtype=torch.float32)[:, None]  # [inst, 1]

    # As the notebook: Xavier-normal on the whole [inst, n, m] tensor, bias zero.
    W = torch.nn.Parameter(torch.empty(inst, n, m))
    torch.nn.init.xavier_normal_(W)
    b = torch.nn.Parameter(torch.zeros(inst, n))
    opt = torch.optim.AdamW([W, b], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    losses = []
    start = time.perf_counter()
    for _ in range(c["steps"]):
        values = torch.rand(batch, inst, n)
        present = torch.rand(batch, inst, n) <= probability
        x = torch.where(present, values, torch.zeros(()))
        h = torch.einsum("bif,ifh->bih", x, W)
        out = torch.relu(torch.einsum("bih,ifh->bif", h, W) + b)
        per_instance = (importance * (x - out) ** 2).mean(dim=(0, 2))  # [inst]
        loss = per_instance.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(per_instance.detach())
    seconds = time.perf_counter() - start

    tail = torch.stack(losses[-max(1, len(losses) // 10):])  # last 10% of the steps
    return {
        "seconds": seconds,
        "steps_per_second": c["steps"] / seconds,
        "final_loss": float(tail.mean()),
        "threads": torch.get_num_threads(),
        "version": torch.__version__,
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(train(json.load(f))))
