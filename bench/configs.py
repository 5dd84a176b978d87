"""The benchmark configs: the same work for tms, PyTorch and JAX.

Each config is the notebook's training of many independent instances at once: W of shape
[instances, features, hidden], b of shape [instances, features], a fresh sparse batch every
step, the importance-weighted squared error averaged over batch and features and summed over
instances, AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01).
"""

import numpy as np


def log_range(start, stop, count):
    """`count` values from `start` to `stop`, evenly spaced in log."""
    return list(np.exp(np.linspace(np.log(start), np.log(stop), count)))


def config(name, n, m, instances, steps, importance, probabilities, kernels=("auto",)):
    assert len(probabilities) == instances
    assert len(importance) == instances and all(len(r) == n for r in importance)
    return {
        "name": name,
        # tms runs the config once per `[train] kernel` listed (the references once).
        "kernels": list(kernels),
        "n": n,
        "m": m,
        "instances": instances,
        "batch": 1024,
        "steps": steps,
        # importance[instance][feature], probability[instance] (the same for every feature)
        "importance": [[float(v) for v in row] for row in importance],
        "probability": [float(p) for p in probabilities],
    }


def _same(instances, row):
    return [list(row)] * instances


def all_configs(scale=1.0):
    """The five configs of issue #4. `scale` multiplies the step counts."""
    s = lambda steps: max(10, int(steps * scale))
    phase_r = log_range(0.1, 10.0, 20)
    phase_p = log_range(1.0, 0.01, 20)
    return [
        config("intro", 5, 2, 10, s(3000), _same(10, [0.9**i for i in range(5)]),
               log_range(1.0, 0.05, 10)),
        config("wtw", 20, 5, 10, s(3000), _same(10, [0.7**i for i in range(20)]),
               log_range(1.0, 0.01, 10)),
        config("sweep-100", 100, 20, 20, s(500),
               _same(20, [100 ** (-i / 99) for i in range(100)]), log_range(1.0, 0.05, 20)),
        config("uniform", 400, 30, 20, s(150), _same(20, [1.0] * 400),
               log_range(1.0, 0.01, 20)),
        # 20 relative importances x 20 densities; feature 0 has importance 1.
        config("phase", 2, 1, 400, s(3000),
               [[1.0, r] for p in phase_p for r in phase_r],
               [p for p in phase_p for _ in phase_r]),
    ] + sparsity_configs(scale)


def sparsity_configs(scale=1.0):
    """The uniform and sweep-100 shapes with every instance at one density (issue #14): at
    density 1 through the fused kernel and the block pass, and at 1−S = 0.01 and 0.001
    through the block pass with dense input and with sparse input."""
    s = lambda steps: max(10, int(steps * scale))
    out = []
    for name, n, m, steps, importance in [
        ("uniform", 400, 30, 150, [1.0] * 400),
        ("sweep-100", 100, 20, 500, [100 ** (-i / 99) for i in range(100)]),
    ]:
        for p, kernels in [(1.0, ("fused", "gemm")), (0.01, ("gemm", "sparse")),
                           (0.001, ("gemm", "sparse"))]:
            out.append(config(f"{name}-p{p:g}", n, m, 20, s(steps), _same(20, importance),
                              [p] * 20, kernels))
    return out


def dense_decoder_flops_per_step(c):
    """FLOPs of the one inherently dense product, the decoder's forward W_dec·h (2*n*m*batch
    per instance): the least real work a step does, whatever the sparsity."""
    return 2 * c["n"] * c["m"] * c["batch"] * c["instances"]


def matmul_flops_per_step(c):
    """Dense-equivalent matmul FLOPs of one training step of all instances: encoder and
    decoder forward, and the three products of the backward pass, 2*n*m*batch each."""
    return 10 * c["n"] * c["m"] * c["batch"] * c["instances"]
