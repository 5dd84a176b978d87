"""The paper's first figure from the Python API: five features of decreasing importance in
two dimensions, one panel per sparsity, each feature's column W_i drawn as an arrow (coloured
by importance), with W^T W beneath.

    pip install ./python matplotlib
    python examples/intro.py [OUT.png]
"""

import sys

import matplotlib

matplotlib.use("Agg")  # draws to a file; no display needed
import matplotlib.pyplot as plt
import numpy as np

import tms

run = tms.reproduce("intro")  # 10 sparsities × 5 restarts; the lowest-loss restart is kept
print(run.summary())
print("verdict:", "reproduced" if run.reproduced else "NOT reproduced")

kept = [m for m in run.metrics if m["selected"]]
fig, axes = plt.subplots(2, len(kept), figsize=(2.0 * len(kept), 4.2))
for col, m in enumerate(kept):
    W = run.W[m["index"]]  # [features, hidden]
    importance = np.asarray(m["importance"])
    colors = plt.cm.viridis(importance / importance.max())
    top = axes[0, col]
    for i, (x, y) in enumerate(W):
        top.plot([0, x], [0, y], color=colors[i], lw=2)
        top.plot(x, y, "o", color=colors[i], ms=4)
    top.set_xlim(-1.3, 1.3)
    top.set_ylim(-1.3, 1.3)
    top.set_aspect("equal")
    top.axis("off")
    top.set_title(f"1−S = {m['feature_probability'][0]:.3g}\n{m['geometry']}", fontsize=7)
    bottom = axes[1, col]
    bottom.imshow(W @ W.T, cmap="RdBu", vmin=-1, vmax=1)
    bottom.set_xticks([])
    bottom.set_yticks([])
axes[1, 0].set_ylabel("WᵀW")
fig.suptitle("Toy models of superposition: n = 5 features in m = 2 dimensions")
fig.tight_layout()
out = sys.argv[1] if len(sys.argv) > 1 else "intro.png"
fig.savefig(out, dpi=120)
print("wrote", out)
