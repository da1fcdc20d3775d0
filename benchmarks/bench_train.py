"""Throughput of the SimCLR train step and of its input pipeline, and peak memory.

  python benchmarks/bench_train.py                        # widths 64 and 32, batch 256
  python benchmarks/bench_train.py --widths 16 --batch 128 --steps 3
  python benchmarks/bench_train.py --widths 16 --profile /tmp/trace   # + a TensorBoard trace

Train step: images/s of the jitted SimCLR step (two 32x32 views per image, ResNet-18 with the
CIFAR stem, projection MLP, NT-Xent, LARS), timed over `--steps` steps after compilation, fed
from device-resident batches so only the step is measured. Pipeline: images/s of the tf.data
SimCLR views alone (both views of each image, CIFAR subset, batch `--batch`), consumed as numpy.
Peak memory: the process's maximum resident set (CPU) or the device's peak bytes in use.
"""

from __future__ import annotations

import argparse
import contextlib
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
from gpu_check import compiled_flops, peak_tflops  # noqa: E402  (beside this script)

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_subset")


def peak_memory_mb() -> float:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_method(width: int) -> SimCLR:
  return SimCLR(backbone=ResNet(depth=18, width=width, stem="cifar"), image_size=32, proj_hidden_dims=(512,),
                proj_dim=128, temperature=0.5, view_kwargs=dict(jitter_strength=0.5))


def bench_step(source, width: int, batch: int, steps: int, loop_steps: int = 0, profile: str | None = None) -> dict:
  """{"step": images/s of the step on one device batch, "loop": images/s with the pipeline feeding it,
  "flops": FLOPs per step}."""
  method = make_method(width)
  mesh = train.make_mesh()
  tx = train.make_optimizer("lars", 1e-3, weight_decay=1e-6)
  ds = data.train_dataset(source, method.make_views, global_batch=batch, seed=0)
  it = ds.as_numpy_iterator()
  host = next(it)
  b = train.shard_batch(host, mesh)
  state = train.init_train_state(method, tx, jax.random.key(0), b, mesh)
  step = train.make_train_step(method, tx, mesh)
  rng = jax.random.key(1)
  flops = compiled_flops(step.lower(state, b, rng).compile())
  state, m = step(state, b, rng)  # compile
  jax.block_until_ready(m)
  t = time.perf_counter()
  with (jax.profiler.trace(profile) if profile else contextlib.nullcontext()):
    for _ in range(steps):
      state, m = step(state, b, rng)
    jax.block_until_ready(m)
  out = {"step": steps * batch / (time.perf_counter() - t), "flops": flops}
  if loop_steps:
    t = time.perf_counter()
    for _ in range(loop_steps):
      state, m = step(state, train.shard_batch(next(it), mesh), rng)
    jax.block_until_ready(m)
    out["loop"] = loop_steps * batch / (time.perf_counter() - t)
  return out


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
  parser.add_argument("--loop_steps", type=int, default=3, help="steps of the pipeline-fed loop (0: skip)")
  parser.add_argument("--peak_tflops", type=float, default=None, help="the device's peak for MFU")
  parser.add_argument("--profile", default=None, help="write a profiler trace of the timed steps here")
  args = parser.parse_args()
  source = data.load_image_folder(args.data, "train")
  dev = jax.devices()[0]
  peak = args.peak_tflops or peak_tflops(dev.device_kind)
  print(f"devices: {jax.device_count()} x {dev.device_kind}; batch {args.batch}; "
        f"ResNet-18 CIFAR stem; SimCLR two 32x32 views per image; peak "
        f"{'%.0f TFLOP/s' % peak if peak else 'unknown (MFU needs --peak_tflops)'}")
  pipe = bench_pipeline(source, args.batch, args.pipeline_batches)
  print(f"input pipeline (SimCLR views only): {pipe:9.1f} images/s")
  for w in args.widths:
    r = bench_step(source, w, args.batch, args.steps, args.loop_steps,
                   os.path.join(args.profile, f"width{w}") if args.profile else None)
    tflops = r["flops"] * r["step"] / args.batch / 1e12
    mfu = f", MFU {100 * tflops / peak:.1f}%" if peak else ""
    loop = f"; loop with the pipeline {r['loop']:9.1f} images/s" if "loop" in r else ""
    print(f"train step, width {w:3d}:            {r['step']:9.1f} images/s  "
          f"(pipeline / step = {pipe / r['step']:.1f}x){loop}; {r['flops']:.3e} FLOPs/step, "
          f"{tflops:.3f} TFLOP/s{mfu}")
  if args.profile:
    print(f"profiler traces in {args.profile} (tensorboard --logdir {args.profile})")
  print(f"peak memory: {peak_memory_mb():.0f} MiB")


if __name__ == "__main__":
  main()
