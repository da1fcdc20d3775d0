r"""Felzenszwalb-Huttenlocher mask generation: time per image, and DetCon views from the masks.

    python benchmarks/bench_fh_masks.py                       # the shared ants/bees photographs
    python benchmarks/bench_fh_masks.py --root DIR --split val --scale 1000 --sigma 0.8 --min_size 1000

Computes the FH masks of every image of ROOT/SPLIT (scikit-image, one process, no cache),
prints the time per image and the number of segments, then draws DetCon views (224 px,
ResNet-50 7x7 grid) from the masks through the real input pipeline and writes a picture of
a few images, their masks and the sampled regions (--out).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data",
                    "hymenoptera_data")


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--root", default=ROOT)
  ap.add_argument("--split", default="train")
  ap.add_argument("--scale", type=float, default=1000.0)
  ap.add_argument("--sigma", type=float, default=0.8)
  ap.add_argument("--min_size", type=int, default=1000)
  ap.add_argument("--out", default="/tmp/fh_masks_antsbees.png")
  args = ap.parse_args()

  from jax_ssl import data  # pylint: disable=g-import-not-at-top
  from jax_ssl.data import _masks as fh  # pylint: disable=g-import-not-at-top
  from jax_ssl.methods.detcon import DetConB, write_mask_figure  # pylint: disable=g-import-not-at-top
  from jax_ssl.models import ResNet  # pylint: disable=g-import-not-at-top

  src = data.load_image_folder(args.root, args.split)
  images = [fh._decode(b) if src.encoded else src.images[i] for i, b in enumerate(src.images)]  # pylint: disable=protected-access
  times, segments = [], []
  for im in images:
    t0 = time.perf_counter()
    seg = fh.fh_segment(im, scale=args.scale, sigma=args.sigma, min_size=args.min_size)
    times.append(time.perf_counter() - t0)
    segments.append(int(seg.max()) + 1)
  times = np.asarray(times) * 1000
  pixels = np.asarray([im.shape[0] * im.shape[1] for im in images])
  print(f"{src.name}: {len(images)} images, median {np.median(pixels) / 1e3:.0f} kpixels "
        f"(min {pixels.min() / 1e3:.0f}, max {pixels.max() / 1e3:.0f})")
  print(f"FH (scale={args.scale}, sigma={args.sigma}, min_size={args.min_size}): {times.mean():.1f} ms per image "
        f"(median {np.median(times):.1f}, max {times.max():.1f}); {times.sum() / 1000:.1f} s in all; "
        f"{1000 * times.sum() / pixels.sum():.2f} us per pixel")
  print(f"segments per image: median {np.median(segments):.0f}, min {min(segments)}, max {max(segments)}")

  method = DetConB(backbone=ResNet(depth=50, width=64, stem="imagenet"), image_size=224, fh_scale=args.scale,
                   fh_sigma=args.sigma, fh_min_size=args.min_size, mask_cache_dir="/tmp/jax_ssl_bench_cache")
  t0 = time.perf_counter()
  src = method.prepare_source(src)  # the cached path: 16-bit PNG masks for photographs of varying size
  print(f"prepare_source (compute + cache): {time.perf_counter() - t0:.1f} s")
  ds = data.train_dataset(src, method.make_views, global_batch=16, seed=0)
  b = next(ds.as_numpy_iterator())
  present = [len(np.unique(b["ids1"][i])) for i in range(16)]
  print(f"DetCon views through the pipeline: view {b['view1'].shape}, masks {b['masks1'].shape}, "
        f"distinct sampled ids per view: median {np.median(present):.0f}")
  print("wrote", write_mask_figure(method, src, args.out, num_images=6))


if __name__ == "__main__":
  main()
