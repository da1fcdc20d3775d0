"""One dataset-level pass of the clustering methods at scale: time and peak host memory.

  python benchmarks/bench_dataset_pass.py                      # N = 200,000, K = 3,000
  python benchmarks/bench_dataset_pass.py --n 20000 --parts kmeans sela

Parts, each in a fresh process (its own peak resident set size, `ru_maxrss`):
  extract: the trainer's feature extraction (`parallel.extract_features_sharded`) of N images
    (the shared CIFAR-10 subset repeated to N, in memory) through DeepCluster-v2's quick
    network (ResNet-18 CIFAR stem, width 16, 128-d projections), features left on the device.
  kmeans: DeepCluster-v2's clustering of one head: spherical k-means (`cluster.spherical_kmeans`,
    10 iterations + the final assignment) of N x 128 unit rows into K clusters.
  sela: SeLA's label optimization of one head: `cluster.sela_labels` (lambda 25, float64 log
    domain, chunked) of N x K float32 logits (a random linear head on random 512-d features).
  neighbors: SCAN's mining (once per run): exact top-21 cosine neighbours of N x 128 unit rows
    (`parallel.nearest_neighbors` on device-sharded chunks of 1024; K is not used).
The figures are per head; DeepCluster-v2 runs 3 heads per epoch, SeLA 10 per optimization.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(part: str, n: int, k: int) -> None:
  import resource  # pylint: disable=g-import-not-at-top

  sys.path.insert(0, ROOT)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jax_ssl import cluster  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  t0 = time.perf_counter()
  if part == "kmeans":
    x = rng.normal(size=(n, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = jax.device_put(x)
    t0 = time.perf_counter()
    c, a = cluster.spherical_kmeans(x, x[:k], num_iters=10)
    a.block_until_ready()
    extra = f"clusters in use {len(np.unique(np.asarray(a)))}"
  elif part == "sela":
    f = rng.normal(size=(n, 512)).astype(np.float32)
    w = (rng.normal(size=(512, k)) / np.sqrt(512)).astype(np.float32)
    logits = f @ w
    del f
    t0 = time.perf_counter()
    labels = cluster.sela_labels(logits, lam=25.0)
    extra = f"clusters in use {len(np.unique(labels))}, largest {np.bincount(labels).max()}"
  elif part == "neighbors":
    from jax_ssl import parallel  # pylint: disable=g-import-not-at-top

    chunk = 1024
    c = -(-n // chunk)
    idx = np.minimum(np.arange(c * chunk), n - 1).reshape(c, chunk)
    x = rng.normal(size=(n, 128)).astype(np.float32)
    mesh = parallel.make_mesh()
    put = lambda a: jax.device_put(a, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, "data")))
    feats = parallel.ShardedFeatures(features=put(x[idx]), index=put(idx.astype(np.int32)),
                                     valid=put(np.arange(c * chunk).reshape(c, chunk) < n),
                                     labels=put(np.zeros((c, chunk), np.int32)))
    del x
    t0 = time.perf_counter()
    nb, _ = parallel.nearest_neighbors(feats, k=21)
    nb.block_until_ready()
    extra = f"self first for {np.mean(np.asarray(nb)[..., 0].reshape(-1)[:n] == np.arange(n)):.4f} of the rows"
  elif part == "extract":
    from experiments.configs import deepcluster_v2_cifar10  # pylint: disable=g-import-not-at-top
    from jax_ssl import data, methods, parallel, pretrained  # pylint: disable=g-import-not-at-top
    from jax_ssl.data import ArraySource  # pylint: disable=g-import-not-at-top

    config = deepcluster_v2_cifar10.get_config("quick")
    method = pretrained.build_method(config)
    src = data.load_image_folder(config.data.path, "train")
    reps = -(-n // len(src))
    images = np.concatenate([src.images] * reps)[:n]
    big = ArraySource(images, np.zeros(n, np.int32), src.class_names, f"cifar-x{reps}")
    method.set_schedule(steps_per_epoch=1, total_steps=1, num_examples=n)
    mesh = parallel.make_mesh()
    params, state = method.init(jax.random.key(0), methods.example_batch(method, src))
    embed = parallel.make_embed_fn(method.pass_features, mesh)
    t0 = time.perf_counter()
    feats = parallel.extract_features_sharded(embed, method.eval_preprocess, params, state, big, batch_size=512,
                                              mesh=mesh)
    feats.features.block_until_ready()
    extra = f"{n / (time.perf_counter() - t0):.0f} images/s, features {tuple(feats.features.shape)}"
  else:
    raise SystemExit(f"error: unknown part {part!r}")
  dt = time.perf_counter() - t0
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"RESULT {part} N={n} K={k}: {dt:.1f} s, peak RSS {peak:.0f} MB ({extra})", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--n", type=int, default=200_000)
  parser.add_argument("--k", type=int, default=3000)
  parser.add_argument("--parts", nargs="+", default=["extract", "kmeans", "sela", "neighbors"])
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    _child(args.child, args.n, args.k)
    return
  for part in args.parts:
    out = subprocess.run([sys.executable, __file__, "--child", part, "--n", str(args.n), "--k", str(args.k)],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT")]
    print(lines[-1] if lines else f"{part} failed:\n{out.stderr[-2000:]}", flush=True)


if __name__ == "__main__":
  main()
