"""Throughput of the SimCLR train step and of its input pipeline, and peak memory.

  python benchmarks/bench_train.py                        # widths 64 and 32, batch 256
  python benchmarks/bench_train.py --widths 16 --batch 128 --steps 3

Train step: images/s of the jitted SimCLR step (two 32x32 views per image, ResNet-18 with the
CIFAR stem, projection MLP, NT-Xent, LARS), timed over `--steps` steps after compilation, fed
from device-resident batches so only the step is measured. Pipeline: images/s of the tf.data
SimCLR views alone (both views of each image, CIFAR subset, batch `--batch`), consumed as numpy.
Peak memory: the process's maximum resident set (CPU) or the device's peak bytes in use.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from jax_ssl import data, train  # noqa: E402
from jax_ssl.methods import SimCLR  # noqa: E402
from jax_ssl.models import ResNet  # noqa: E402

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_subset")


def peak_memory_mb() -> float:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_method(width: int) -> SimCLR:
  return SimCLR(backbone=ResNet(depth=18, width=width, stem="cifar"), image_size=32, proj_hidden_dims=(512,),
                proj_dim=128, temperature=0.5, view_kwargs=dict(jitter_strength=0.5))


def bench_step(source, width: int, batch: int, steps: int) -> float:
  method = make_method(width)
  mesh = train.make_mesh()
  tx = train.make_optimizer("lars", 1e-3, weight_decay=1e-6)
  ds = data.train_dataset(source, method.make_views, global_batch=batch, seed=0)
  host = next(ds.as_numpy_iterator())
  b = train.shard_batch(host, mesh)
  state = train.init_train_state(method, tx, jax.random.key(0), b, mesh)
  step = train.make_train_step(method, tx, mesh)
  rng = jax.random.key(1)
  state, m = step(state, b, rng)  # compile
  jax.block_until_ready(m)
  t = time.perf_counter()
  for _ in range(steps):
    state, m = step(state, b, rng)
  jax.block_until_ready(m)
  return steps * batch / (time.perf_counter() - t)


def bench_pipeline(source, batch: int, batches: int) -> float:
  method = make_method(8)
  it = data.train_dataset(source, method.make_views, global_batch=batch, seed=0).as_numpy_iterator()
  next(it)  # warm up the threads
  t = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch / (time.perf_counter() - t)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--widths", type=int, nargs="+", default=[64, 32])
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--pipeline_batches", type=int, default=20)
  parser.add_argument("--data", default=SHARED)
  args = parser.parse_args()
  source = data.load_image_folder(args.data, "train")
  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}; batch {args.batch}; "
        f"ResNet-18 CIFAR stem; SimCLR two 32x32 views per image")
  pipe = bench_pipeline(source, args.batch, args.pipeline_batches)
  print(f"input pipeline (SimCLR views only): {pipe:9.1f} images/s")
  for w in args.widths:
    ips = bench_step(source, w, args.batch, args.steps)
    print(f"train step, width {w:3d}:            {ips:9.1f} images/s  "
          f"(pipeline / step = {pipe / ips:.1f}x)")
  print(f"peak memory: {peak_memory_mb():.0f} MiB")


if __name__ == "__main__":
  main()
