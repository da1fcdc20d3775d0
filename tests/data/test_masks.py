"""DetCon mask ops and FH masks: view/mask alignment, majority vote, id sampling, pooling, cache."""

import os

import numpy as np
import pytest
import tensorflow as tf

from jax_ssl import data, losses
from jax_ssl.data import ops
from jax_ssl.data import _masks as fh


def _seed(i):
  return tf.constant([7, i], tf.int64)


def test_grid_mask_matches_numpy():
  h, w, g = 7, 10, 3
  expected = (np.arange(h)[:, None] * g // h) * g + (np.arange(w)[None, :] * g // w)
  np.testing.assert_array_equal(ops.grid_mask(h, w, g).numpy(), expected)


def test_view_mask_is_the_same_crop_and_flip_as_the_image():
  # The mask encodes each pixel's position; the image is a smooth position gradient. If the
  # view's image and mask went through the same crop box and flip, the image pixel value
  # equals the gradient at the position its mask value names (up to bilinear blur).
  h, w, size = 40, 48, 16
  rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  mask = rows * w + cols
  image = np.stack([(rows + 0.5) / h, (cols + 0.5) / w, np.zeros_like(rows, float)], -1).astype(np.float32)
  flips = set()
  for i in range(12):
    img_v, mask_v = ops.crop_flip_pair(image, mask, _seed(i), size=size, crop_scale=(0.2, 1.0))
    img_v, mask_v = img_v.numpy(), mask_v.numpy()
    r, c = mask_v // w, mask_v % w
    # Rows are a nearest-neighbour resampling of a contiguous range; flips reverse columns.
    assert np.all(np.diff(r, axis=0) >= 0) and np.all(r == r[:, :1])
    flipped = c[0, 0] > c[0, -1]
    flips.add(bool(flipped))
    assert np.all((np.diff(c, axis=1) <= 0) if flipped else (np.diff(c, axis=1) >= 0))
    step_r = (r.max() - r.min() + 1) / size  # source pixels per output pixel
    step_c = (c.max() - c.min() + 1) / size
    np.testing.assert_allclose(img_v[..., 0], (r + 0.5) / h, atol=(max(step_r, 1) + 0.5) / h)
    np.testing.assert_allclose(img_v[..., 1], (c + 0.5) / w, atol=(max(step_c, 1) + 0.5) / w)
    # The image is the geometric part of simclr_view with the same seed (colour ops off).
    ref = ops.simclr_view(image, _seed(i), size=size, crop_scale=(0.2, 1.0), jitter_p=0.0, gray_p=0.0)
    np.testing.assert_allclose(img_v, ref.numpy(), atol=1e-6)
  assert flips == {True, False}


def test_view_mask_matches_numpy_nearest_crop():
  h, w, size = 30, 30, 15
  mask = np.random.default_rng(0).integers(0, 50, (h, w))
  seed = _seed(3)
  s_crop, s_flip, *_ = ops.split_seed(seed, 5)
  top, left, bh, bw = ops.sample_crop_box(s_crop, h, w, scale=(0.3, 1.0)).numpy()
  flip = bool(ops.sample_flip(s_flip).numpy())
  # tf.image.resize(nearest) samples source index floor((i + 0.5) * in / out) (half-pixel centres).
  ri = np.minimum(np.floor((np.arange(size) + 0.5) * bh / size).astype(int), bh - 1)
  ci = np.minimum(np.floor((np.arange(size) + 0.5) * bw / size).astype(int), bw - 1)
  expected = mask[top:top + bh, left:left + bw][ri][:, ci]
  if flip:
    expected = expected[:, ::-1]
  _, got = ops.crop_flip_pair(np.zeros((h, w, 3), np.float32), mask, seed, size=size, crop_scale=(0.3, 1.0))
  np.testing.assert_array_equal(got.numpy(), expected)


def _np_majority(mask, grid):
  f = mask.shape[0] // grid
  out = np.zeros((grid, grid), int)
  for i in range(grid):
    for j in range(grid):
      out[i, j] = np.argmax(np.bincount(mask[i * f:(i + 1) * f, j * f:(j + 1) * f].ravel()))  # first max
  return out


def test_downsample_majority_vote_and_tie_rule():
  mask = np.array([[3, 3, 2, 5],
                   [1, 1, 5, 5],
                   [7, 0, 9, 9],
                   [0, 7, 9, 2]])
  # cell (0,0): 3 and 1 tie -> 1; (0,1): 5 wins; (1,0): 7 and 0 tie -> 0; (1,1): 9 wins.
  np.testing.assert_array_equal(ops.downsample_mask(mask, 2, num_ids=10).numpy(), [[1, 5], [0, 9]])
  rng = np.random.default_rng(1)
  for _ in range(20):
    m = rng.integers(0, 4, (16, 16))  # few ids in 4x4 cells: many ties
    np.testing.assert_array_equal(ops.downsample_mask(m, 4, num_ids=4).numpy(), _np_majority(m, 4))
  with pytest.raises(ValueError, match="multiple of the feature grid"):
    ops.downsample_mask(np.zeros((10, 10), np.int32), 4, num_ids=2)


def test_sampled_ids_exist_in_the_view_and_are_uniform_with_replacement():
  small = np.array([[0, 0, 0, 7], [0, 0, 0, 7], [0, 0, 0, 3], [0, 0, 0, 3]])
  counts = np.zeros(10)
  for i in range(200):
    ids = ops.sample_mask_ids(small, _seed(i), num_ids=10, num_samples=16).numpy()
    assert ids.shape == (16,) and set(ids) <= {0, 3, 7}
    counts += np.bincount(ids, minlength=10)
  # Uniform among present ids regardless of their area (id 0 covers 12 cells, 3 and 7 two).
  freq = counts[[0, 3, 7]] / counts.sum()
  np.testing.assert_allclose(freq, 1 / 3, atol=0.03)
  # Whole views: every sampled id is on the view's feature grid; 16 draws from fewer ids repeat.
  image = np.random.default_rng(2).random((24, 24, 3)).astype(np.float32)
  mask = np.asarray(ops.grid_mask(24, 24, 3))
  for i in range(10):
    v = ops.detcon_view(image, mask, _seed(i), size=16, grid=4, num_ids=9)
    small = ops.downsample_mask(v["mask"], 4, num_ids=9).numpy()
    ids = v["ids"].numpy()
    assert set(ids) <= set(np.unique(small)) and len(set(ids)) < 16
    np.testing.assert_array_equal(v["masks"].numpy(), (small[None] == ids[:, None, None]).astype(np.float32))


def test_pooling_a_one_hot_mask_is_the_mean_over_its_cells():
  rng = np.random.default_rng(3)
  feats = rng.normal(size=(2, 4, 4, 5)).astype(np.float32)
  small = rng.integers(0, 3, (2, 4, 4))
  ids = np.array([[0, 1, 2, 1], [2, 2, 0, 1]])
  masks = np.stack([ops.binary_masks(small[b], ids[b]).numpy() for b in range(2)])
  pooled = np.asarray(losses.mask_pool(feats, masks))
  for b in range(2):
    for r in range(4):
      sel = small[b] == ids[b, r]
      expected = feats[b][sel].mean(0) if sel.any() else np.zeros(5)
      np.testing.assert_allclose(pooled[b, r], expected, rtol=1e-5, atol=1e-6)


def _source(n=6, size=24, encoded=False, sizes=None):
  rng = np.random.default_rng(0)
  imgs = []
  for i in range(n):
    h, w = sizes[i] if sizes else (size, size)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = rng.integers(0, 255, 3)  # two flat halves: FH finds the boundary
    img[:, w // 2:] = rng.integers(0, 255, 3)
    imgs.append(img)
  labels = np.zeros(n, np.int32)
  if encoded:
    blobs = [tf.io.encode_png(im).numpy() for im in imgs]
    return data.ArraySource(np.asarray(blobs, dtype=object), labels, ["a"], "toy-encoded", encoded=True), imgs
  return data.ArraySource(np.stack(imgs), labels, ["a"], "toy-fh"), imgs


def test_fh_masks_are_cached_by_source_and_parameters(tmp_path, capsys):
  src, imgs = _source()
  kw = dict(scale=10, sigma=0.5, min_size=30, cache_dir=str(tmp_path))
  m1 = fh.fh_masks(src, **kw)
  assert "FH masks for the 6 images" in capsys.readouterr().out
  assert m1.shape == (6, 24, 24) and m1.dtype == np.uint16
  np.testing.assert_array_equal(m1[0], fh.fh_segment(imgs[0], scale=10, sigma=0.5, min_size=30))
  assert len(np.unique(m1[0])) == 2  # the two halves
  m2 = fh.fh_masks(src, **kw)
  assert "FH masks for" not in capsys.readouterr().out  # loaded from the cache
  np.testing.assert_array_equal(m1, m2)
  fh.fh_masks(src, **{**kw, "min_size": 31})
  assert "FH masks for" in capsys.readouterr().out  # other parameters: another cache entry
  assert len(os.listdir(tmp_path / "fh_masks")) == 2
  with pytest.raises(data.DataError, match="more than max_ids=1"):
    fh.fh_masks(src, **{**kw, "use_cache": False}, max_ids=1)


def test_pipeline_gives_each_example_its_mask_for_decoded_and_encoded_sources(tmp_path):
  sizes = [(20, 30), (24, 24), (31, 17), (22, 26)]
  for encoded in (False, True):
    src, imgs = _source(n=4, encoded=encoded, sizes=sizes if encoded else None)
    masks = fh.fh_masks(src, scale=10, sigma=0.5, min_size=5, cache_dir=str(tmp_path))
    src = fh.with_masks(src, masks)
    ds = data.train_dataset(src, lambda ex, seed: {"mask": tf.cast(ex["mask"], tf.int32)[:17, :17],
                                                   "index": ex["index"]}, global_batch=1, seed=0)
    for b in ds.take(4).as_numpy_iterator():
      i = int(b["index"][0])
      expected = fh.fh_segment(imgs[i], scale=10, sigma=0.5, min_size=5)[:17, :17]
      np.testing.assert_array_equal(b["mask"][0], expected)
  with pytest.raises(data.DataError, match="2 masks for 4 images"):
    fh.with_masks(src, masks[:2])


def test_mask_store_is_parallel_sharded_and_resumes_without_redoing_finished_shards(tmp_path, monkeypatch):
  sizes = [(20 + i % 5, 18 + i % 7) for i in range(10)]
  src, imgs = _source(n=10, encoded=True, sizes=sizes)
  kw = dict(scale=10, sigma=0.5, min_size=5, shard_size=3, verbose=False)  # 4 shards: 3 + 3 + 3 + 1
  expected = [fh.fh_segment(im, scale=10, sigma=0.5, min_size=5) for im in imgs]
  decode = lambda b: tf.io.decode_png(b, dtype=tf.uint16)[..., 0].numpy()

  # 2 worker processes give the same masks as one.
  par = fh.fh_masks(src, cache_dir=str(tmp_path / "par"), workers=2, **kw)
  assert isinstance(par, data.BlobStore) and len(par) == 10
  for i in range(10):
    np.testing.assert_array_equal(decode(par[i]), expected[i])
  sub = par[np.asarray([7, 2])]  # a subset stays on disk, indexed like the examples
  np.testing.assert_array_equal(decode(sub[0]), expected[7])

  # Interrupted after 2 shards: the rerun computes only the 2 missing ones.
  computed, real_write = [], fh._write_shard

  def write_then_die(folder, k, masks, encoded):
    if len(computed) == 2:
      raise KeyboardInterrupt
    real_write(folder, k, masks, encoded)
    computed.append(k)

  monkeypatch.setattr(fh, "_write_shard", write_then_die)
  with pytest.raises(KeyboardInterrupt):
    fh.fh_masks(src, cache_dir=str(tmp_path / "seq"), workers=1, **kw)
  assert computed == [0, 1]
  monkeypatch.setattr(fh, "_write_shard", real_write)
  segmented, real_segment = [], fh._segment_items
  monkeypatch.setattr(fh, "_segment_items", lambda items, *a: segmented.append(len(items)) or real_segment(items, *a))
  resumed = fh.fh_masks(src, cache_dir=str(tmp_path / "seq"), workers=1, **kw)
  assert segmented == [3, 1]  # shards 2 and 3 only
  assert [resumed[i] for i in range(10)] == [par[i] for i in range(10)]
  segmented.clear()
  fh.fh_masks(src, cache_dir=str(tmp_path / "seq"), workers=1, **kw)
  assert segmented == []  # complete: opened, not recomputed


def test_a_corrupt_image_is_named_in_one_clear_error(tmp_path):
  src, imgs = _source(n=5, encoded=True, sizes=[(20, 20)] * 5)
  paths = []
  for i, im in enumerate(imgs):
    paths.append(str(tmp_path / f"img{i}.png"))
    tf.io.write_file(paths[-1], tf.io.encode_png(im))
  with open(paths[3], "wb") as f:
    f.write(b"\x89PNG this is not an image")
  files = data.ArraySource(np.asarray(paths, dtype=object), src.labels, ["a"], "files", encoded=True, files=True)
  with pytest.raises(data.DataError, match="img3.png: not a readable image"):
    fh.fh_masks(files, scale=10, sigma=0.5, min_size=5, cache_dir=str(tmp_path / "c"), shard_size=2,
                workers=1, verbose=False)
