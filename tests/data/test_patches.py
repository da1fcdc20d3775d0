"""Pretext-task input ops: context pairs (labels, gaps, jitter), jigsaw tiles and permutations."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from jax_ssl import losses
from jax_ssl.data import ops

GEOM = dict(patch=96, gap=48, jitter=7)  # Doersch et al. 2015
SMALL = dict(patch=10, gap=2, jitter=1)  # the 32 px CIFAR geometry of the configs


def _seed(a, b=0):
  return tf.constant([a, b], tf.int64)


def _coord_image(h, w):
  """Float image whose channels encode (row, column) / 1000: positions are readable from pixels."""
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  return np.stack([yy / 1000.0, xx / 1000.0, np.zeros_like(yy, float)], -1).astype(np.float32)


# ------------------------------------------------------------------------------------- context


@pytest.mark.parametrize("geom,size", [(GEOM, (300, 420)), (SMALL, (32, 32))])
def test_context_pairs_labels_gap_and_jitter(geom, size):
  p, gap, j = geom["patch"], geom["gap"], geom["jitter"]
  stride = p + gap
  labels = []
  for i in range(400):
    s = ops.sample_context_pair(_seed(i), *size, **geom)
    label = int(s["label"])
    tops, lefts, jit = s["tops"].numpy(), s["lefts"].numpy(), s["jitter"].numpy()
    labels.append(label)
    dy, dx = losses.CONTEXT_OFFSETS[label]
    # The label is the second patch's grid offset from the first (raster order, centre skipped).
    assert losses.context_label(dy, dx) == label
    grid1 = np.array([tops[0], lefts[0]]) - jit[0]
    grid2 = np.array([tops[1], lefts[1]]) - jit[1]
    np.testing.assert_array_equal(grid2 - grid1, [dy * stride, dx * stride])
    assert np.all(np.abs(jit) <= j)
    # Both patches inside the image.
    assert tops.min() >= 0 and lefts.min() >= 0
    assert tops.max() + p <= size[0] and lefts.max() + p <= size[1]
    # Never overlapping, and at least gap - 2 jitter apart along the offset's axes.
    sep_y = abs(tops[1] - tops[0]) - p
    sep_x = abs(lefts[1] - lefts[0]) - p
    assert max(sep_y, sep_x) >= 0
    if dy:
      assert sep_y >= gap - 2 * j
    else:
      assert abs(tops[1] - tops[0]) <= 2 * j
    if dx:
      assert sep_x >= gap - 2 * j
    else:
      assert abs(lefts[1] - lefts[0]) <= 2 * j
  assert sorted(set(labels)) == list(range(8))  # every offset is drawn
  assert min(np.bincount(labels)) > 400 / 8 * 0.5


def test_jitter_reaches_its_bounds():
  jit = np.stack([ops.sample_context_pair(_seed(i), 300, 300, **GEOM)["jitter"].numpy() for i in range(300)])
  assert jit.min() == -7 and jit.max() == 7


@pytest.mark.parametrize("label", range(8))
def test_context_pair_patches_are_at_the_labelled_offset(label):
  """The pixels of the two patches: their positions (read from a coordinate image) match the label."""
  img = _coord_image(260, 270)
  for i in range(200):  # find a seed with this label
    out = ops.context_pair(tf.constant(img), _seed(i, 1), color="none", downsample_p=0.0, **GEOM)
    if int(out["label"]) == label:
      break
  else:
    raise AssertionError(f"label {label} never drawn")
  patches = out["patches"].numpy()
  assert patches.shape == (2, 96, 96, 3)
  pos = np.round(patches[:, 0, 0, :2] * 1000).astype(int)  # (row, col) of each top-left pixel
  dy, dx = losses.CONTEXT_OFFSETS[label]
  delta = pos[1] - pos[0]
  for d, o in zip(delta, (dy, dx)):
    assert abs(d - o * 144) <= 14
  # Swapping the pair reverses the offset, hence label 7 - l.
  rev = losses.context_label(int(np.sign(-delta[0]) if dy else 0), int(np.sign(-delta[1]) if dx else 0))
  assert rev == 7 - label


def test_context_pair_small_images_are_upscaled_to_fit():
  out = ops.context_pair(tf.random.uniform([100, 180, 3], seed=1), _seed(0), **GEOM)
  assert out["patches"].shape == (2, 96, 96, 3)
  with pytest.raises(ValueError, match="overlap"):
    ops.sample_context_pair(_seed(0), 300, 300, patch=96, gap=10, jitter=7)


def test_resize_to_area_range():
  img = tf.random.uniform([370, 500, 3], seed=2)
  for i in range(10):
    out = ops.resize_to_area(img, _seed(i), area_range=(150_000, 450_000), min_side=254)
    h, w = out.shape[:2]
    assert 150_000 * 0.98 <= h * w <= 450_000 * 1.02 and min(h, w) >= 254
    assert abs(w / h - 500 / 370) < 0.02


def test_color_drop_keeps_one_channel_and_replaces_the_others_with_small_noise():
  rng = np.random.RandomState(0)
  patch = rng.rand(32, 32, 3).astype(np.float32)
  kept_seen = set()
  for i in range(30):
    out = ops.color_drop_noise(tf.constant(patch), _seed(i)).numpy()
    kept = [c for c in range(3) if np.array_equal(out[..., c], patch[..., c])]
    assert len(kept) == 1
    k = kept[0]
    kept_seen.add(k)
    for c in set(range(3)) - {k}:
      noise = out[..., c]
      assert abs(noise.mean() - patch[..., k].mean()) < 0.01
      np.testing.assert_allclose(noise.std(), patch[..., k].std() / 100, rtol=0.15)
  assert kept_seen == {0, 1, 2}


def test_color_projection_removes_green_magenta_and_keeps_gray():
  rng = np.random.RandomState(1)
  patch = (0.25 + 0.5 * rng.rand(8, 8, 3)).astype(np.float32)
  out = ops.color_projection(tf.constant(patch)).numpy()
  g = np.array([-1.0, 2.0, -1.0]) / np.sqrt(6.0)
  np.testing.assert_allclose(out @ g, 0.0, atol=1e-5)
  np.testing.assert_allclose(out.sum(-1), patch.sum(-1), atol=1e-5)  # brightness unchanged
  gray = np.full((4, 4, 3), 0.4, np.float32)
  np.testing.assert_allclose(ops.color_projection(tf.constant(gray)).numpy(), gray, atol=1e-6)


def test_random_downsample_loses_detail_or_is_identity():
  patch = tf.random.uniform([96, 96, 3], seed=3)
  changed = 0
  for i in range(40):
    out = ops.random_downsample(patch, _seed(i), p=0.5).numpy()
    assert out.shape == (96, 96, 3) and out.min() >= 0 and out.max() <= 1
    if not np.array_equal(out, patch.numpy()):
      changed += 1
      assert out.std() < patch.numpy().std()  # noise is smoothed away
  assert 8 <= changed <= 32
  np.testing.assert_array_equal(ops.random_downsample(patch, _seed(0), p=0.0).numpy(), patch.numpy())


# ------------------------------------------------------------------------------------- jigsaw


def _greedy_reference(num, t, first, criterion):
  """Independent, slow re-implementation of Noroozi & Favaro's Algorithm 1 (list-based)."""
  perms = list(itertools.permutations(range(t)))
  chosen = [perms[first]]
  remaining = [p for i, p in enumerate(perms) if i != first]
  while len(chosen) < num:
    def score(p):
      ds = [sum(a != b for a, b in zip(p, q)) for q in chosen]
      return sum(ds) if criterion == "mean" else min(ds)
    best = max(range(len(remaining)), key=lambda i: (score(remaining[i]), -i))
    chosen.append(remaining.pop(best))
  return np.array(chosen)


@pytest.mark.parametrize("criterion", ["mean", "min"])
def test_hamming_permutations_match_the_greedy_algorithm(criterion):
  got = ops.hamming_permutations(10, grid=2, seed=3, criterion=criterion)
  first = int(np.random.RandomState(3).randint(24))
  np.testing.assert_array_equal(got, _greedy_reference(10, 4, first, criterion))


@pytest.mark.parametrize("num", [30, 100])
def test_hamming_permutation_set_size_and_distances(num):
  mean_set = ops.hamming_permutations(num, seed=0)
  min_set = ops.hamming_permutations(num, seed=0, criterion="min")
  for s in (mean_set, min_set):
    assert s.shape == (num, 9) and s.dtype == np.int32
    assert len({tuple(p) for p in s}) == num  # distinct
    assert all(sorted(p) == list(range(9)) for p in s)  # permutations
  # Brute-force minimum distance, and the max-min design beats random sets of the same size.
  d = lambda s: min(np.sum(a != b) for a, b in itertools.combinations(s, 2))
  assert ops.min_hamming_distance(min_set) == d(min_set)
  rng = np.random.RandomState(0)
  random_best = max(d(np.array([rng.permutation(9) for _ in range(num)])) for _ in range(5))
  assert d(min_set) > random_best
  assert d(min_set) >= d(mean_set)
  # The paper's criterion maximizes the mean distance: above a random set's.
  mean_d = lambda s: np.mean([np.sum(a != b) for a, b in itertools.combinations(s, 2)])
  assert mean_d(mean_set) > mean_d(np.array([rng.permutation(9) for _ in range(num)]))
  np.testing.assert_array_equal(ops.hamming_permutations(num, seed=0), mean_set)  # deterministic


def test_hamming_permutations_bad_arguments():
  with pytest.raises(ValueError, match="cannot choose"):
    ops.hamming_permutations(25, grid=2)
  with pytest.raises(ValueError, match="criterion"):
    ops.hamming_permutations(5, criterion="max")


@pytest.mark.parametrize("crop,grid,tile", [(225, 3, 64), (30, 3, 8)])
def test_jigsaw_tiles_stay_in_their_cells(crop, grid, tile):
  cell = crop // grid
  corners = np.stack([ops.sample_jigsaw_tiles(_seed(i), crop=crop, grid=grid, tile=tile).numpy()
                      for i in range(200)])
  base = np.array([[r * cell, c * cell] for r in range(grid) for c in range(grid)])
  off = corners - base
  assert off.min() == 0 and off.max() == cell - tile  # jitter covers its range exactly
  # Never overlapping (each tile is inside its own cell); horizontal neighbours' gaps vary.
  gaps = corners[:, 1, 1] - (corners[:, 0, 1] + tile)
  assert gaps.min() >= 0 and gaps.max() > 0


def test_jigsaw_tiles_follow_the_permutation():
  perms = ops.hamming_permutations(20, seed=1)
  img = _coord_image(256, 300)
  for i in range(5):
    out = ops.jigsaw_tiles(tf.constant(img), _seed(i), perms, gray_p=0.0, channel_jitter=0,
                           normalize_tiles=False)
    tiles, label = out["tiles"].numpy(), int(out["label"])
    assert tiles.shape == (9, 64, 64, 3) and 0 <= label < 20
    pos = np.round(tiles[:, 0, 0, :2] * 1000).astype(int)  # top-left (row, col) of each tile
    # Undo the permutation: output i holds tile perms[label][i]; raster order is then recovered.
    raster = np.empty_like(pos)
    raster[perms[label]] = pos
    rows, cols = raster[:, 0].reshape(3, 3), raster[:, 1].reshape(3, 3)
    assert np.all(np.diff(rows, axis=0) >= 64) and np.all(np.diff(cols, axis=1) >= 64)
    assert np.all(np.diff(rows, axis=0) <= 75 + 11) and np.all(np.abs(np.diff(rows, axis=1)) <= 11)


def test_jigsaw_tiles_are_standardized_and_gray_sometimes():
  perms = ops.hamming_permutations(10)
  img = tf.random.uniform([260, 300, 3], seed=4)
  grays = 0
  for i in range(20):
    tiles = ops.jigsaw_tiles(img, _seed(i), perms)["tiles"].numpy()
    np.testing.assert_allclose(tiles.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(tiles.std(axis=(1, 2)), 1.0, atol=1e-3)
    raw = ops.jigsaw_tiles(img, _seed(i), perms, normalize_tiles=False, channel_jitter=0)["tiles"].numpy()
    grays += int(np.allclose(raw[..., 0], raw[..., 1]))
  assert 1 <= grays <= 12  # 30% grayscale


# ------------------------------------------------------------------------------------- determinism


def _context(img, s):
  return ops.context_pair(img, s, patch=10, gap=2, jitter=1)["patches"]


def _jigsaw(img, s):
  return ops.jigsaw_tiles(img, s, ops.hamming_permutations(10), resize=40, crop=30, tile=8)["tiles"]


@pytest.mark.parametrize("fn", [_context, _jigsaw])
def test_eager_equals_tf_data_and_seed_determinism(fn):
  img = tf.random.uniform([40, 48, 3], seed=5)
  eager = np.stack([fn(img, tf.constant([i, 7], tf.int64)).numpy() for i in range(6)])
  again = fn(img, tf.constant([2, 7], tf.int64)).numpy()
  np.testing.assert_array_equal(again, eager[2])
  ds = tf.data.Dataset.range(6).map(lambda i: fn(img, tf.stack([i, tf.constant(7, tf.int64)])),
                                    num_parallel_calls=3, deterministic=True).batch(6)
  np.testing.assert_allclose(next(iter(ds)).numpy(), eager, atol=1e-6)
  assert np.abs(eager[0] - eager[1]).max() > 1e-3
