"""JAX reference: the same training, jit-compiled, the whole loop under `lax.scan`.

Usage: python reference_jax.py CONFIG.json  ->  prints one JSON line with the timing and loss.
The compile time is reported apart; steps/s counts the compiled run only.
"""

import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (after choosing the platform)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def make_train(c):
    n, m, inst, batch = c["n"], c["m"], c["instances"], c["batch"]
    importance = jnp.asarray(c["importance"], dtype=jnp.float32)  # [inst, n]
    probability = jnp.asarray(c["probability"], dtype=jnp.float32)[:, None, None]
    lr, beta1, beta2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 0.01

    def loss_fn(params, x):  # x: [inst, batch, n]
        W, b = params
        h = jnp.einsum("ibf,ifh->ibh", x, W)
        out = jax.nn.relu(jnp.einsum("ibh,ifh->ibf", h, W) + b[:, None, :])
        per_instance = jnp.mean(importance[:, None, :] * (x - out) ** 2, axis=(1, 2))
        return per_instance.sum(), per_instance

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def step(carry, _):
        params, m1, m2, t, key = carry
        key, k_value, k_mask = jax.random.split(key, 3)
        values = jax.random.uniform(k_value, (inst, batch, n))
        present = jax.random.uniform(k_mask, (inst, batch, n)) <= probability
        x = jnp.where(present, values, 0.0)
        grads, per_instance = grad_fn(params, x)
        t = t + 1
        # AdamW exactly as PyTorch: decoupled decay first, then the bias-corrected Adam step.
        new = []
        for p, g, a, v in zip(params, grads, m1, m2):
            p = p * (1 - lr * wd)
            a = beta1 * a + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            a_hat = a / (1 - beta1**t)
            v_hat = v / (1 - beta2**t)
            new.append((p - lr * a_hat / (jnp.sqrt(v_hat) + eps), a, v))
        params = tuple(x[0] for x in new)
        m1 = tuple(x[1] for x in new)
        m2 = tuple(x[2] for x in new)
        return (params, m1, m2, t, key), per_instance

    @jax.jit
    def train(params, key):
        zeros = tuple(jnp.zeros_like(p) for p in params)
        carry = (params, zeros, zeros, jnp.float32(0.0), key)
        carry, losses = jax.lax.scan(step, carry, None, length=c["steps"])
        return carry[0], losses

    return train


def train(c, seed=0):
    n, m, inst = c["n"], c["m"], c["instances"]
    key = jax.random.PRNGKey(seed)
    key, k_init = jax.random.split(key)
    # Xavier normal with PyTorch's fans for a [inst, n, m] tensor: fan_in = n*m, fan_out = inst*m.
    std = np.sqrt(2.0 / (n * m + inst * m))
    W = std * jax.random.normal(k_init, (inst, n, m), dtype=jnp.float32)
    b = jnp.zeros((inst, n), dtype=jnp.float32)
    fn = make_train(c)

    start = time.perf_counter()
    compiled = fn.lower((W, b), key).compile()
    compile_seconds = time.perf_counter() - start

    start = time.perf_counter()
    params, losses = compiled((W, b), key)
    jax.block_until_ready(losses)
    seconds = time.perf_counter() - start

    losses = np.asarray(losses)
    tail = losses[-max(1, len(losses) // 10):]
    return {
        "seconds": seconds,
        "compile_seconds": compile_seconds,
        "steps_per_second": c["steps"] / seconds,
        "final_loss": float(tail.mean()),
        "version": jax.__version__,
        "devices": str(jax.devices()),
    }


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(train(json.load(f))))
