"""Input-pipeline throughput: images/s per CPU core for ImageNet-style training views.

  python benchmarks/bench_pipeline.py                      # SimCLR and BYOL views, 1 and 2 cores
  python benchmarks/bench_pipeline.py --cores 1 2 4 --batches 40

Each measurement is a fresh process pinned to `c` cores (`sched_setaffinity` before TensorFlow
starts, so tf.data's thread pool and AUTOTUNE see `c` cores). It streams the shared ants/bees
JPEG photographs (397 files, ~500x375 px) from disk exactly as a training run does: an image
folder with storage="files", `jax_ssl.data.train_dataset` with the method's own `make_views`
(JPEG decode -> two 224-px random resized crops, flip, colour jitter, grayscale, Gaussian blur,
solarization, normalization), batched and converted to NumPy. No model runs: the figure is how
many source images per second the host can turn into training views, the number to compare
with the accelerator's step rate. The first `--warmup` batches (graph tracing, AUTOTUNE ramp)
are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "..", "shared", "data", "hymenoptera_data")

_CHILD = r"""
import json, os, sys, time
cores, method_name, batches, warmup, batch = json.loads(sys.argv[1])
os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
tf.config.set_visible_devices([], "GPU")
import jax_ssl.data as data
from jax_ssl import methods, models
src = data.load_image_folder(sys.argv[2], "train", storage="files")
backbone = models.ResNet(depth=18, width=8)  # never run: the views only
kw = dict(backbone=backbone, image_size=224)
if method_name == "simclr":   # SimCLR's ImageNet views (Chen et al. 2020, B.9): blur p=0.5
  m = methods.SimCLR(**kw, view_kwargs={"blur_p": 0.5}, mean=data.ops.IMAGENET_MEAN, std=data.ops.IMAGENET_STD)
else:                         # BYOL's asymmetric views (blur 1.0 / 0.1, solarize 0 / 0.2)
  m = methods.BYOL(**kw)
ds = data.train_dataset(src, m.make_views, global_batch=batch, seed=0)
it = data.as_numpy_iterator(ds)
for _ in range(warmup):
  next(it)
t0 = time.perf_counter()
for _ in range(batches):
  b = next(it)
dt = time.perf_counter() - t0
assert b["view1"].shape == (batch, 224, 224, 3), b["view1"].shape
print("RESULT", json.dumps({"images_per_s": batches * batch / dt, "cores": len(os.sched_getaffinity(0))}))
"""


def run(cores: int, method: str, args) -> dict:
  cfg = json.dumps([cores, method, args.batches, args.warmup, args.batch])
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-c", _CHILD, cfg, PHOTOS], cwd=ROOT, capture_output=True,
                       text=True, env=env)
  line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
  if out.returncode or not line:
    print(out.stdout[-2000:], out.stderr[-3000:])
    raise SystemExit(f"{method} on {cores} core(s) failed (rc {out.returncode})")
  return json.loads(line[0][len("RESULT "):])


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--cores", type=int, nargs="+", default=[1, 2])
  p.add_argument("--methods", nargs="+", default=["simclr", "byol"], choices=("simclr", "byol"))
  p.add_argument("--batches", type=int, default=20)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--batch", type=int, default=32)
  args = p.parse_args()
  available = len(os.sched_getaffinity(0))
  print(f"host: {available} cores available; {args.batches} batches of {args.batch} timed after "
        f"{args.warmup} warm-up batches; two 224-px views per image", flush=True)
  for method in args.methods:
    base = None
    for c in args.cores:
      if c > available:
        print(f"{method}: {c} cores requested, only {available} available: skipped")
        continue
      r = run(c, method, args)
      per_core = r["images_per_s"] / r["cores"]
      base = base or r["images_per_s"]
      print(f"{method}: {r['cores']} core(s): {r['images_per_s']:.1f} images/s "
            f"({per_core:.1f} per core, {r['images_per_s'] / base:.2f}x the first)", flush=True)


if __name__ == "__main__":
  main()
