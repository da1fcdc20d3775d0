r"""FH mask store: the same images precomputed by 1 and by N worker processes (the speed-up).

    python benchmarks/bench_fh_parallel.py                  # ants/bees train, 1 and 2 workers
    python benchmarks/bench_fh_parallel.py --workers 1 2 4 --limit 0 --shard_size 16

Each run computes the whole mask store of the source (DetCon's ImageNet FH parameters,
scale = min_size = 1000, sigma 0.8) into a fresh temporary cache folder with
`jax_ssl.data.fh_masks(workers=W)`, times it end to end (worker start-up included) and checks
that every worker count gives byte-identical masks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                    "hymenoptera_data")


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--root", default=ROOT)
  ap.add_argument("--split", default="train")
  ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
  ap.add_argument("--limit", type=int, default=128, help="first N images (0: all)")
  ap.add_argument("--shard_size", type=int, default=8)
  args = ap.parse_args()

  import numpy as np  # pylint: disable=g-import-not-at-top

  from jax_ssl import data  # pylint: disable=g-import-not-at-top
  from jax_ssl.data import _split  # pylint: disable=g-import-not-at-top

  src = data.load_image_folder(args.root, args.split, storage="files")
  if args.limit:
    src = _split._take(src, np.arange(min(args.limit, len(src))), f"{src.name}[:{args.limit}]")  # pylint: disable=protected-access
  print(f"{src.name}: {len(src)} images, shards of {args.shard_size}, {os.cpu_count()} cores", flush=True)
  times, stores = {}, {}
  for w in args.workers:
    tmp = tempfile.mkdtemp(prefix="fh_bench_")
    try:
      t0 = time.perf_counter()
      store = data.fh_masks(src, scale=1000.0, sigma=0.8, min_size=1000, cache_dir=tmp, workers=w,
                            shard_size=args.shard_size, verbose=False)
      times[w] = time.perf_counter() - t0
      stores[w] = [store[i] for i in range(len(store))]
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
    print(f"workers={w}: {times[w]:.1f}s ({1000 * times[w] / len(src):.0f} ms per image), "
          f"speed-up {times[args.workers[0]] / times[w]:.2f}x vs {args.workers[0]}", flush=True)
  first = stores[args.workers[0]]
  assert all(s == first for s in stores.values()), "worker counts disagree on the masks"
  print("masks identical for every worker count")


if __name__ == "__main__":
  main()
