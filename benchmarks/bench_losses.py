"""Time per call of the jitted losses, forward and value_and_grad, on the default device.

  python benchmarks/bench_losses.py                 # median of 5 timed calls per entry
  python benchmarks/bench_losses.py --repeats 3

One device (no XLA_FLAGS of ours), float32. Each entry is compiled and run once as a warm-up,
then timed over `--repeats` calls, each ended by `block_until_ready`; the median is printed.
Shapes: NT-Xent with N = 512, 2048, 4096 pairs of D = 128 embeddings; SwAV with B = 256, two
large crops and four small ones (D = 128 embeddings each), K = 3000 prototypes; DetCon with
B = 64 images of R = 16 slots, D = 128. Gradients are taken with respect to every float input.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jax_ssl import losses  # noqa: E402


def time_call(fn, args, repeats: int) -> float:
  """Median seconds per call of the jitted ``fn(*args)``, after one compiling warm-up call."""
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def _randn(rng, *shape):
  return jax.device_put(rng.standard_normal(shape).astype(np.float32))


def cases():
  """(name, shape description, loss of float arrays, float args, non-differentiated kwargs)."""
  rng = np.random.default_rng(0)
  for n in (512, 2048, 4096):
    z1 = _randn(rng, n, 128)
    z2 = z1 + 0.5 * _randn(rng, n, 128)
    yield ("nt_xent", f"N={n} D=128",
           lambda a, b: losses.nt_xent(a, b, temperature=0.1), (z1, z2))

  crops = [_randn(rng, 256, 128) for _ in range(6)]  # 2 large + 4 small crops, embedded
  prototypes = _randn(rng, 3000, 128)
  yield ("swav_loss", "B=256 2+4 crops D=128 K=3000",
         lambda z, c: losses.swav_loss(z, c, temperature=0.1, epsilon=0.05),
         (crops, prototypes))

  b, r, d = 64, 16, 128
  vecs = [_randn(rng, b, r, d) for _ in range(4)]
  ids = [jax.device_put(rng.integers(0, 8, size=(b, r)).astype(np.int32)) for _ in range(4)]

  def detcon(p1, p2, t1, t2):
    return losses.detcon_loss(p1, p2, t1, t2, *ids, temperature=0.1)

  yield ("detcon_loss", f"B={b} R={r} D={d}", detcon, tuple(vecs))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  dev = jax.devices()[0]
  print(f"jax {jax.__version__}, device {dev} ({dev.device_kind}; {jax.device_count()} device(s), "
        f"{os.cpu_count()} host CPUs), float32, median of {args.repeats} calls after warm-up")
  rows = []
  for name, shape, loss, inputs in cases():
    argnums = tuple(range(len(inputs)))
    fwd = jax.jit(loss)
    vag = jax.jit(jax.value_and_grad(loss, argnums=argnums))
    t_fwd = time_call(fwd, inputs, args.repeats)
    t_vag = time_call(vag, inputs, args.repeats)
    rows.append((name, shape, f"{1e3 * t_fwd:.2f}", f"{1e3 * t_vag:.2f}"))
    del fwd, vag

  header = ("loss", "shape", "forward ms", "value_and_grad ms")
  widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
  align = ("<", "<", ">", ">")
  fmt = "  ".join(f"{{:{a}{w}}}" for a, w in zip(align, widths))
  print(fmt.format(*header))
  print("  ".join("-" * w for w in widths))
  for r in rows:
    print(fmt.format(*r))


if __name__ == "__main__":
  main()
