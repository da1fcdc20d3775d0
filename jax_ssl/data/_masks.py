"""Felzenszwalb-Huttenlocher segmentation masks for a whole source, computed once and cached.

DetCon (Hénaff et al. 2021, Sec. 3.2) contrasts regions of unsupervised FH segmentations
(Felzenszwalb & Huttenlocher 2004), computed once per image on the full-resolution image
before any augmentation (the official ``generate_fh_masks_for_imagenet.py`` uses
``skimage.segmentation.felzenszwalb`` with scale = min_size = 1000 on ImageNet). Here the
masks of a source are computed with scikit-image, in parallel on every core (and split
across hosts), into a mask store on disk keyed by the source's name, its size, a digest of
its images and the FH parameters: resumable shard by shard, and opened instantly by a
second run (or evaluation). `experiments/main.py --mode=prepare` precomputes them offline.

Masks are attached to a source as ``source.extras["mask"]``: uint16 ``[N, H, W]`` for
same-size in-memory images, else a :class:`BlobStore` of 16-bit PNGs on disk (read and
decoded per example by the pipeline, so host memory does not grow with the dataset).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time

import numpy as np

from jax_ssl import segmentation
from jax_ssl.segmentation import decode_rgb as _decode, encode_png16, fh_segment  # noqa: F401  (re-exported)
from jax_ssl.data._sources import ArraySource, DataError

_segment_items = segmentation.segment_items  # in-process calls (workers=1) go through this name

_CACHE_VERSION = 2  # 2: a folder of shards (1 was one .npz)


def default_cache_dir() -> str:
  """``$JAX_SSL_CACHE`` or ``~/.cache/jax_ssl``."""
  return os.environ.get("JAX_SSL_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "jax_ssl"))


def _cache_path(source: ArraySource, params: dict, cache_dir: str) -> str:
  """The mask store's folder: keyed by the source's name, size, image digest and FH parameters."""
  digest = hashlib.sha1()
  digest.update(repr((_CACHE_VERSION, source.name, len(source), sorted(params.items()))).encode())
  if source.records is not None:  # the prepared files and which of their records
    digest.update(source.records.fingerprint())
    digest.update(np.asarray(source.images, np.int64).tobytes())
  elif source.files:  # paths, sizes and modification times: reading every file just to key the cache is too slow
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
  return os.path.join(cache_dir, "fh_masks", f"{stem}_{tag}_{digest.hexdigest()[:12]}")


class BlobStore:
  """Per-example encoded masks (16-bit PNGs) in a folder of shards, memory-mapped, read by index.

  Shard k holds examples [k * S, (k + 1) * S): `k.bin` (the PNGs back to back) and
  `k.idx.npy` (int64 offsets, S + 1). Behaves as the per-example extra it replaces: `len`,
  `store[i]` (bytes), `store[index_array]` (a subset, still on disk), `dtype` object. Host
  memory holds three int64 numbers per example; the masks stay in the page cache.
  """

  dtype = np.dtype(object)

  def __init__(self, folder: str, num_shards: int, index: np.ndarray | None = None):
    self.folder, self.num_shards = folder, num_shards
    offsets = [np.load(os.path.join(folder, f"{k:06d}.idx.npy")) for k in range(num_shards)]
    self._shard = np.concatenate([np.full(len(o) - 1, k, np.int32) for k, o in enumerate(offsets)])
    self._start = np.concatenate([o[:-1] for o in offsets])
    self._end = np.concatenate([o[1:] for o in offsets])
    self.index = np.arange(len(self._shard)) if index is None else np.asarray(index, np.int64)
    self._maps = {}

  def __len__(self) -> int:
    return len(self.index)

  def _map(self, k):
    if k not in self._maps:
      path = os.path.join(self.folder, f"{k:06d}.bin")
      self._maps[k] = np.memmap(path, np.uint8, "r") if os.path.getsize(path) else np.zeros(0, np.uint8)
    return self._maps[k]

  def __getitem__(self, i):
    if isinstance(i, (int, np.integer)):
      j = self.index[i]
      return self._map(int(self._shard[j]))[self._start[j]:self._end[j]].tobytes()
    sub = BlobStore.__new__(BlobStore)
    sub.__dict__.update(self.__dict__, index=self.index[i], _maps={})
    return sub

  def __iter__(self):
    return (self[i] for i in range(len(self)))


def _atomic(path: str, write):
  """`write(tmp_path)`, then rename onto `path`: a reader never sees half a file."""
  stem, ext = os.path.splitext(path)
  tmp = f"{stem}.tmp{os.getpid()}{ext}"
  write(tmp)
  os.replace(tmp, path)


def _write_shard(folder: str, k: int, masks, encoded: bool):
  """Atomically: the data file first, then the index file that marks the shard done."""
  base = os.path.join(folder, f"{k:06d}")
  if not encoded:
    _atomic(f"{base}.masks.npy", lambda p: np.save(p, masks))
    return

  def write_bin(p):
    with open(p, "wb") as f:
      f.write(b"".join(masks))

  _atomic(f"{base}.bin", write_bin)
  offsets = np.concatenate([[0], np.cumsum([len(b) for b in masks])]).astype(np.int64)
  _atomic(f"{base}.idx.npy", lambda p: np.save(p, offsets))


def _shard_done(folder: str, k: int, encoded: bool) -> bool:
  return os.path.exists(os.path.join(folder, f"{k:06d}.idx.npy" if encoded else f"{k:06d}.masks.npy"))


def _example_name(source: ArraySource, i: int) -> str:
  return str(source.images[i]) if source.files else f"{source.name} image {i}"


def fh_masks(source: ArraySource, *, scale: float = 1000.0, sigma: float = 0.8, min_size: int = 1000,
             max_ids: int = 256, cache_dir: str | None = None, use_cache: bool = True,
             verbose: bool = True, workers: int | None = None, shard_size: int = 512,
             process_index: int = 0, process_count: int = 1, wait_timeout: float = 24 * 3600.0):
  """FH masks of every image of `source`, computed in parallel into an on-disk mask store.

  The store is a folder of shards of `shard_size` images (keyed by the source's name, size,
  image digest and the FH parameters). Shards are computed by `workers` processes (default:
  every core when there are several shards) and written atomically as they finish, so an
  interrupted computation resumes without redoing finished shards; with `process_count` > 1
  (a multi-host run on a shared `cache_dir`) process p computes shards p, p + P, ... and
  then waits for the others'. A second call (or run) only opens the store.

  Args:
    scale, sigma, min_size: ``skimage.segmentation.felzenszwalb`` parameters (larger scale and
      min_size give fewer, larger segments; the paper's ImageNet setting is 1000 / 0.8 / 1000).
    max_ids: segmentations must have fewer segments than this (the one-hot depth of the
      mask ops); an image with more is an error naming it.
    cache_dir: where the store lives (default :func:`default_cache_dir`).
    use_cache: False computes in a temporary folder that is removed afterwards (decoded
      sources only: a store of encoded masks must stay on disk).
    workers: worker processes (1: in this process).
    shard_size: images per shard (the unit of work and of resumption).
    process_index, process_count: this process's share of the shards in a multi-host run.
    wait_timeout: seconds to wait for the other processes' shards.

  Returns:
    uint16 ``[N, H, W]`` for decoded (same-size, in-memory) sources; for encoded sources a
    :class:`BlobStore` of N 16-bit PNGs (see :func:`encode_png16`), read per example.
  """
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top

  params = {"scale": float(scale), "sigma": float(sigma), "min_size": int(min_size)}
  encoded = source.encoded
  if use_cache:
    folder = _cache_path(source, params, cache_dir or default_cache_dir())
  elif encoded:
    raise DataError("fh_masks(use_cache=False) is for in-memory sources; the masks of an encoded source "
                    "are a store on disk: pass a cache_dir")
  else:
    folder = tempfile.mkdtemp(prefix="fh_masks_")
  os.makedirs(folder, exist_ok=True)
  n = len(source)
  num_shards = -(-n // shard_size)
  try:
    if not os.path.exists(os.path.join(folder, "complete")):
      _compute(source, folder, num_shards, shard_size, params, max_ids, encoded, verbose=verbose,
               workers=workers, process_index=process_index, process_count=process_count,
               wait_timeout=wait_timeout)
    if encoded:
      return BlobStore(folder, num_shards)
    return np.concatenate([np.load(os.path.join(folder, f"{k:06d}.masks.npy")) for k in range(num_shards)])
  finally:
    if not use_cache:
      shutil.rmtree(folder, ignore_errors=True)


def _compute(source, folder, num_shards, shard_size, params, max_ids, encoded, *, verbose, workers,
             process_index, process_count, wait_timeout):
  n = len(source)
  mine = [k for k in range(process_index, num_shards, process_count) if not _shard_done(folder, k, encoded)]
  done_before = len(range(process_index, num_shards, process_count)) - len(mine)
  if workers is None:
    workers = (os.cpu_count() or 1) if len(mine) > 1 else 1
  workers = max(1, min(workers, len(mine) or 1))
  if verbose:
    print(f"FH masks for the {n} images of {source.name} (scale={params['scale']}, sigma={params['sigma']}, "
          f"min_size={params['min_size']}) into {folder}: {len(mine)} shards of {shard_size} to compute"
          + (f" ({done_before} already done)" if done_before else "")
          + (f" on {workers} processes" if workers > 1 else ""), flush=True)

  def items(k):
    lo, hi = k * shard_size, min((k + 1) * shard_size, n)
    if encoded:
      try:
        return [source.blob(i) for i in range(lo, hi)]
      except OSError as e:
        raise DataError(f"{source.name}: cannot read an image of shard {k} ({e})") from None
    return source.images[lo:hi]

  def finish(k, result):
    masks, error = result
    if error is not None:
      pos, message = error
      raise DataError(f"{_example_name(source, k * shard_size + pos)}: {message}")
    _write_shard(folder, k, masks, encoded)

  t0 = time.perf_counter()
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top

  bar = tqdm(total=len(mine), desc="FH masks", unit="shard", disable=not verbose or not mine)
  if workers == 1:
    for k in mine:
      finish(k, _segment_items(items(k), encoded, params, max_ids))
      bar.update()
  else:
    import multiprocessing  # pylint: disable=g-import-not-at-top
    from concurrent.futures import ProcessPoolExecutor  # pylint: disable=g-import-not-at-top

    # spawn, not fork: the parent holds TensorFlow / JAX threads. A few shards in flight per worker.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
      pending, todo = {}, list(mine)
      while todo or pending:
        while todo and len(pending) < 2 * workers:
          k = todo.pop(0)
          pending[k] = pool.submit(segmentation.segment_items, items(k), encoded, params, max_ids)
        k = next(iter(pending))
        finish(k, pending.pop(k).result())
        bar.update()
  bar.close()
  if mine and verbose:
    count = min(n, len(mine) * shard_size)
    elapsed = time.perf_counter() - t0
    print(f"FH masks: {elapsed:.1f}s for about {count} images ({1000 * elapsed / count:.1f} ms per image, "
          f"{workers} process{'es' if workers > 1 else ''})", flush=True)
  deadline = time.time() + wait_timeout
  while not all(_shard_done(folder, k, encoded) for k in range(num_shards)):
    if time.time() > deadline:
      missing = [k for k in range(num_shards) if not _shard_done(folder, k, encoded)]
      raise DataError(f"FH masks: {len(missing)} shards of {folder} written by other processes are still "
                      "missing; is the cache_dir shared by every host? Precompute the masks offline "
                      "(experiments/main.py --mode=prepare) and point mask_cache_dir at them")
    time.sleep(1.0)
  if process_index == 0:
    with open(os.path.join(folder, "complete"), "w") as f:
      f.write(f"{n}\n")


def with_masks(source: ArraySource, masks: np.ndarray, key: str = "mask") -> ArraySource:
  """A copy of `source` whose examples carry `masks` under `key` (checked against the images)."""
  if len(masks) != len(source):
    raise DataError(f"{source.name}: {len(masks)} masks for {len(source)} images")
  if not source.encoded and not isinstance(masks, BlobStore) and masks.dtype != object and \
      masks.shape[1:3] != source.images.shape[1:3]:
    raise DataError(f"{source.name}: masks of size {masks.shape[1:3]} for images of size "
                    f"{source.images.shape[1:3]}")
  return dataclasses.replace(source, extras={**source.extras, key: masks})
