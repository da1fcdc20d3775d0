"""Felzenszwalb-Huttenlocher segmentation masks for a whole source, computed once and cached.

DetCon (Hénaff et al. 2021, Sec. 3.2) contrasts regions of unsupervised FH segmentations
(Felzenszwalb & Huttenlocher 2004), computed once per image on the full-resolution image
before any augmentation (the official ``generate_fh_masks_for_imagenet.py`` uses
``skimage.segmentation.felzenszwalb`` with scale = min_size = 1000 on ImageNet). Here the
masks of a source are computed with scikit-image on first use and stored in a cache file
keyed by the source's name, its size, a digest of its image bytes and the FH parameters, so
a second run (or evaluation) loads them instantly.

Masks are attached to a source as ``source.extras["mask"]``: uint16 ``[N, H, W]`` for
same-size images, else an object array of 16-bit PNGs (decoded per example by the pipeline).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import time

import numpy as np

from jax_ssl.data._sources import ArraySource, DataError

_CACHE_VERSION = 1


def default_cache_dir() -> str:
  """``$JAX_SSL_CACHE`` or ``~/.cache/jax_ssl``."""
  return os.environ.get("JAX_SSL_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "jax_ssl"))


def fh_segment(image: np.ndarray, *, scale: float, sigma: float, min_size: int) -> np.ndarray:
  """FH segmentation of one uint8 ``[H, W, 3]`` image: uint16 ``[H, W]`` ids 0..K-1 (scikit-image)."""
  from skimage.segmentation import felzenszwalb  # pylint: disable=g-import-not-at-top

  seg = felzenszwalb(np.asarray(image), scale=scale, sigma=sigma, min_size=int(min_size))
  return seg.astype(np.uint16)


def _decode(blob: bytes) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(io.BytesIO(blob)) as im:
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def encode_png16(mask: np.ndarray) -> bytes:
  """A ``[H, W]`` id map as a 16-bit grayscale PNG (what the pipeline decodes for varying sizes)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  buf = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(mask.astype(np.uint16))).save(buf, format="PNG")
  return buf.getvalue()


def _cache_path(source: ArraySource, params: dict, cache_dir: str) -> str:
  digest = hashlib.sha1()
  digest.update(repr((_CACHE_VERSION, source.name, len(source), sorted(params.items()))).encode())
  if source.files:  # paths, sizes and modification times: reading every file just to key the cache is too slow
    for path in source.images:
      st = os.stat(path)
      digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
  elif source.encoded:
    for blob in source.images:
      digest.update(blob)
  else:
    digest.update(np.ascontiguousarray(source.images).tobytes())
  stem = re.sub(r"[^A-Za-z0-9]+", "_", source.name).strip("_")[-60:]
  tag = "_".join(f"{k}{v}" for k, v in sorted(params.items()))
  return os.path.join(cache_dir, "fh_masks", f"{stem}_{tag}_{digest.hexdigest()[:12]}.npz")


def fh_masks(source: ArraySource, *, scale: float = 1000.0, sigma: float = 0.8, min_size: int = 1000,
             max_ids: int = 256, cache_dir: str | None = None, use_cache: bool = True,
             verbose: bool = True) -> np.ndarray:
  """FH masks of every image of `source` (cached on disk).

  Args:
    scale, sigma, min_size: ``skimage.segmentation.felzenszwalb`` parameters (larger scale and
      min_size give fewer, larger segments; the paper's ImageNet setting is 1000 / 0.8 / 1000).
    max_ids: segmentations must have fewer segments than this (the one-hot depth of the
      mask ops); an image with more is an error naming it.
    cache_dir: where the cache lives (default :func:`default_cache_dir`).
    use_cache: False computes without reading or writing the cache.

  Returns:
    uint16 ``[N, H, W]`` for decoded sources; for encoded sources an object array of N
    16-bit PNGs (see :func:`encode_png16`).
  """
  params = {"scale": float(scale), "sigma": float(sigma), "min_size": int(min_size)}
  path = _cache_path(source, params, cache_dir or default_cache_dir()) if use_cache else None
  if path and os.path.exists(path):
    with np.load(path) as z:
      if source.encoded:
        flat, offsets = z["flat"], z["offsets"]
        return np.asarray([flat[a:b].tobytes() for a, b in zip(offsets[:-1], offsets[1:])], dtype=object)
      return z["masks"]
  if verbose:
    print(f"Computing Felzenszwalb-Huttenlocher masks for the {len(source)} images of {source.name} "
          f"(scale={scale}, sigma={sigma}, min_size={min_size})"
          + (f"; caching them in {path}" if path else ""), flush=True)
  t0 = time.perf_counter()
  masks = []
  for i in range(len(source)):
    image = _decode(source.blob(i)) if source.encoded else source.images[i]
    seg = fh_segment(image, scale=scale, sigma=sigma, min_size=min_size)
    if int(seg.max()) >= max_ids:
      raise DataError(f"{source.name}: image {i} has {int(seg.max()) + 1} FH segments, more than max_ids="
                      f"{max_ids}; raise the FH scale / min_size (now {scale} / {min_size}) or max_ids")
    masks.append(encode_png16(seg) if source.encoded else seg)
  elapsed = time.perf_counter() - t0
  if verbose:
    print(f"FH masks: {elapsed:.1f}s for {len(source)} images ({1000 * elapsed / len(source):.1f} ms per image)",
          flush=True)
  if source.encoded:
    out = np.asarray(masks, dtype=object)
    if path:
      lengths = np.asarray([len(b) for b in masks], np.int64)
      _save(path, flat=np.frombuffer(b"".join(masks), np.uint8),
            offsets=np.concatenate([[0], np.cumsum(lengths)]))
    return out
  out = np.stack(masks)
  if path:
    _save(path, masks=out)
  return out


def _save(path: str, **arrays):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npz"  # atomic: a concurrent reader never sees half a file
  np.savez(tmp, **arrays)
  os.replace(tmp, path)


def with_masks(source: ArraySource, masks: np.ndarray, key: str = "mask") -> ArraySource:
  """A copy of `source` whose examples carry `masks` under `key` (checked against the images)."""
  if len(masks) != len(source):
    raise DataError(f"{source.name}: {len(masks)} masks for {len(source)} images")
  if not source.encoded and masks.dtype != object and masks.shape[1:3] != source.images.shape[1:3]:
    raise DataError(f"{source.name}: masks of size {masks.shape[1:3]} for images of size "
                    f"{source.images.shape[1:3]}")
  return dataclasses.replace(source, extras={**source.extras, key: masks})
