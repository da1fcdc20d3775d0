"""Peak host memory of the same short training run on a dataset of ~4,000 images and on one
100x larger: memory must be bounded by the pipeline's buffers, not by the dataset.

  python benchmarks/bench_data_memory.py                     # folders x1 and x100, storage=files
  python benchmarks/bench_data_memory.py --kind tfds         # TFDS ArrayRecord x1 and x100, by name
  python benchmarks/bench_data_memory.py --repeat 1 10 100 --storage auto

The datasets are built in a temporary folder from the shared CIFAR-10 subset (4,153 training
images): copy `r` holds every image `r` times. `--kind folder`: ROOT/train/CLASS/ files (hard
links, so building 415,300 files is fast and takes no space). `--kind tfds`: a prepared TFDS
dataset (`jax_ssl.data.build_tfds_dataset`, ArrayRecord shards of the PNG bytes, ~1 GB for
x100), read by name (`--config.data.kind=tfds --config.data.name=... --config.data.data_dir=...`).
Each run is a fresh process: `experiments/main.py --mode=train` with the SimCLR quick config at
a tiny width for `--steps` steps; the figure is that process's peak resident set size
(`ru_maxrss`), which includes listing the folder / opening the shards and building the pipeline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data", "cifar10_subset")

_CHILD = r"""
import resource, runpy, sys, time
sys.argv = ["main.py"] + sys.argv[1:]
t0 = time.time()
try:
  runpy.run_path("experiments/main.py", run_name="__main__")
except SystemExit as e:
  if e.code:
    raise
print(f"PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} WALL {time.time() - t0:.1f}")
"""


def build(root: str, repeat: int) -> int:
  """ROOT/train/CLASS/r{k}_{name}: every training image `repeat` times (hard links)."""
  n = 0
  for cls in sorted(os.listdir(os.path.join(SHARED, "train"))):
    src_dir = os.path.join(SHARED, "train", cls)
    dst_dir = os.path.join(root, "train", cls)
    os.makedirs(dst_dir)
    names = sorted(os.listdir(src_dir))
    for k in range(repeat):
      for name in names:
        src, dst = os.path.join(src_dir, name), os.path.join(dst_dir, f"r{k}_{name}")
        try:
          os.link(src, dst)
        except OSError:  # another file system: copy
          shutil.copy(src, dst)
        n += 1
  os.symlink(os.path.abspath(os.path.join(SHARED, "test")), os.path.join(root, "test"))
  return n


def build_tfds(data_dir: str, name: str, repeat: int) -> int:
  """A prepared TFDS dataset `name` in `data_dir`: train = every training image `repeat` times."""
  sys.path.insert(0, ROOT)
  from jax_ssl import data  # pylint: disable=g-import-not-at-top

  splits, names, n = {}, None, 0
  for split in ("train", "test"):
    paths, labels, names = data.list_image_folder(SHARED, split, "folders")
    r = repeat if split == "train" else 1
    splits[split] = data.folder_split(paths, labels, repeat=r)
    n = n or len(paths) * r
  data.build_tfds_dataset(name, data_dir, splits, class_names=names, image_shape=(32, 32, 3),
                          encoding="png")
  return n


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--repeat", type=int, nargs="+", default=[1, 100])
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--storage", default="files", choices=("auto", "memory", "files"))
  p.add_argument("--kind", default="folder", choices=("folder", "tfds"))
  args = p.parse_args()
  tmp = tempfile.mkdtemp(prefix="jax_ssl_mem_")
  try:
    rows = []
    for r in args.repeat:
      data_root = os.path.join(tmp, f"x{r}")
      t0 = time.time()
      if args.kind == "folder":
        n = build(data_root, r)
        data_flags = [f"--config.data.path={data_root}"]
      else:
        n = build_tfds(data_root, f"cifar_subset_x{r}", r)
        data_flags = ["--config.data.kind=tfds", f"--config.data.name=cifar_subset_x{r}",
                      f"--config.data.data_dir={data_root}"]
      built = time.time() - t0
      cmd = [sys.executable, "-c", _CHILD, "--config=experiments/configs/simclr_cifar10.py:quick",
             f"--workdir={os.path.join(tmp, f'run{r}')}", "--mode=train", *data_flags,
             f"--config.data.storage={args.storage}", f"--config.train.steps={args.steps}",
             "--config.model.width=8", "--config.train.batch_size=64", "--config.train.log_every=10",
             "--config.train.checkpoint_every=1000"]
      env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
      env.pop("XLA_FLAGS", None)
      out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
      line = [l for l in out.stdout.splitlines() if l.startswith("PEAK_RSS_MB")]
      if out.returncode or not line:
        print(out.stdout[-2000:], out.stderr[-3000:])
        raise SystemExit(f"run on x{r} failed (rc {out.returncode})")
      _, rss, _, wall = line[0].split()
      rows.append((r, n, float(rss), float(wall), built))
      print(f"{args.kind} x{r}: {n} images (built in {built:.0f}s), storage={args.storage}: peak RSS {float(rss):.0f} MB, "
            f"{args.steps} steps in {float(wall):.0f}s", flush=True)
    base = rows[0][2]
    for r, n, rss, _, _ in rows[1:]:
      print(f"x{r} / x{rows[0][0]} peak RSS: {rss / base:.3f} ({rss - base:+.0f} MB for {n - rows[0][1]} more images)")
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
  main()
