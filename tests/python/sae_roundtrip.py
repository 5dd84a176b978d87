"""Checks an SAE that tms exported in the SAELens layout against tms's own reconstruction.

Usage:

    python tests/python/sae_roundtrip.py SAE_DIR CHECK_FILE

SAE_DIR holds what SAELens's SAE.load_from_disk reads:

  * cfg.json with at least "d_in" and "d_sae" (ints), "architecture" ("standard" or "topk") and,
    for "topk", "k" (int);
  * sae_weights.safetensors with float32 tensors W_enc [d_in, d_sae], b_enc [d_sae],
    W_dec [d_sae, d_in] and b_dec [d_in].

CHECK_FILE is a safetensors file with float32 tensors x [rows, d_in] (inputs) and x_hat
[rows, d_in] (tms's reconstruction of them).

The script recomputes the reconstruction in numpy (float32), with the forward pass of the tms SAE
("standard" is tms's "l1" kind):

    pre   = (x - b_dec) @ W_enc + b_enc
    c     = ReLU(pre)                                            (standard)
    c_j   = ReLU(pre_j) for the k largest pre_j of the row, else 0   (topk; ties: lower index)
    x_hat = c @ W_dec + b_dec

and compares it with CHECK_FILE's x_hat. Exit status: 0 and one "OK" line when the largest
absolute difference is at most max(1e-4 * max|x_hat|, 1e-5); 1 with the worst entry when it is
larger; 2 with a message when a file is missing or unreadable, or a key, shape, dtype or config
value is wrong. Needs only numpy and safetensors (no torch).
"""

import json
import pathlib
import sys

import numpy as np

REL_TOL, ABS_TOL = 1e-4, 1e-5
PARAMS = ["W_enc", "b_enc", "W_dec", "b_dec"]


class Invalid(Exception):
    """Bad input: exit status 2."""


def load_tensors(path, names):
    try:
        from safetensors.numpy import load_file
    except ImportError as e:
        raise Invalid(f"the Python package safetensors is needed ({e})")
    if not path.is_file():
        raise Invalid(f"{path}: no such file")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises several kinds of errors for a bad file
        raise Invalid(f"{path}: not a readable safetensors file ({e})")
    missing = [n for n in names if n not in tensors]
    if missing:
        raise Invalid(f"{path}: missing tensor(s) {', '.join(missing)} (has {', '.join(sorted(tensors)) or 'none'})")
    for n in names:
        if tensors[n].dtype != np.float32:
            raise Invalid(f"{path}: tensor {n} is {tensors[n].dtype}, expected float32")
    return tensors


def expect_shape(path, name, array, shape):
    if tuple(array.shape) != tuple(shape):
        raise Invalid(f"{path}: tensor {name} has shape {list(array.shape)}, expected {list(shape)}")


def load_config(path):
    if not path.is_file():
        raise Invalid(f"{path}: no such file")
    try:
        cfg = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Invalid(f"{path}: not readable JSON ({e})")
    if not isinstance(cfg, dict):
        raise Invalid(f"{path}: expected a JSON object")

    def positive_int(key):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise Invalid(f"{path}: {key!r} must be a positive integer, got {v!r}")
        return v

    d_in, d_sae = positive_int("d_in"), positive_int("d_sae")
    arch = cfg.get("architecture")
    if arch not in ("standard", "topk"):
        raise Invalid(f"{path}: 'architecture' must be \"standard\" or \"topk\", got {arch!r}")
    k = None
    if arch == "topk":
        k = positive_int("k")
        if k > d_sae:
            raise Invalid(f"{path}: 'k' = {k} is larger than 'd_sae' = {d_sae}")
    if cfg.get("apply_b_dec_to_input", True) is not True:
        raise Invalid(f"{path}: 'apply_b_dec_to_input' must be true (tms subtracts b_dec from the input)")
    if cfg.get("normalize_activations", "none") != "none":
        raise Invalid(f"{path}: 'normalize_activations' must be \"none\", got {cfg['normalize_activations']!r}")
    return d_in, d_sae, arch, k


def reconstruct(x, p, arch, k):
    """The tms SAE forward pass, in float32."""
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    codes = np.maximum(pre, np.float32(0))
    if arch == "topk":
        # A stable sort of -pre puts, among equal values, the lower index first.
        top = np.argsort(-pre, axis=1, kind="stable")[:, :k]
        keep = np.zeros(pre.shape, dtype=bool)
        np.put_along_axis(keep, top, True, axis=1)
        codes = np.where(keep, codes, np.float32(0))
    return codes @ p["W_dec"] + p["b_dec"]


def check(sae_dir, check_file):
    sae_dir = pathlib.Path(sae_dir)
    if not sae_dir.is_dir():
        raise Invalid(f"{sae_dir}: no such directory")
    d_in, d_sae, arch, k = load_config(sae_dir / "cfg.json")
    weights_path = sae_dir / "sae_weights.safetensors"
    p = load_tensors(weights_path, PARAMS)
    for name, shape in [("W_enc", (d_in, d_sae)), ("b_enc", (d_sae,)), ("W_dec", (d_sae, d_in)), ("b_dec", (d_in,))]:
        expect_shape(weights_path, name, p[name], shape)

    check_path = pathlib.Path(check_file)
    t = load_tensors(check_path, ["x", "x_hat"])
    x, x_hat = t["x"], t["x_hat"]
    if x.ndim != 2 or x.shape[1] != d_in:
        raise Invalid(f"{check_path}: tensor x has shape {list(x.shape)}, expected [rows, {d_in}]")
    expect_shape(check_path, "x_hat", x_hat, x.shape)
    for name, a in [*p.items(), ("x", x), ("x_hat", x_hat)]:
        if not np.isfinite(a).all():
            raise Invalid(f"tensor {name} has non-finite values")

    ours = reconstruct(x, p, arch, k)
    diff = np.abs(ours - x_hat)
    worst = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(x_hat).max()) if x_hat.size else 0.0
    tol = max(REL_TOL * scale, ABS_TOL)
    what = f"{arch}{f' k={k}' if k else ''}, {x.shape[0]} rows, d_in {d_in}, d_sae {d_sae}"
    if worst <= tol:
        print(f"OK: {what}: max |x_hat - numpy| = {worst:.3g} <= {tol:.3g} (max |x_hat| = {scale:.3g})")
        return 0
    r, c = np.unravel_index(int(diff.argmax()), diff.shape)
    bad = int((diff > tol).sum())
    print(
        f"MISMATCH: {what}: max |x_hat - numpy| = {worst:.6g} > {tol:.3g} (max |x_hat| = {scale:.3g}); "
        f"{bad} of {diff.size} entries over; worst at row {r}, column {c}: "
        f"tms {float(x_hat[r, c]):.9g}, numpy {float(ours[r, c]):.9g}"
    )
    return 1


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} SAE_DIR CHECK_FILE", file=sys.stderr)
        return 2
    try:
        return check(argv[1], argv[2])
    except Invalid as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
