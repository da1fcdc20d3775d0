"""Multi-crop views: counts, sizes, ranges, per-crop scale ranges, determinism, eager == tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from jax_ssl.data import ops

KW = dict(sizes=(32, 16), counts=(2, 4), scales=((0.14, 1.0), (0.05, 0.14)), jitter_strength=0.5, blur_p=0.5)


def _image(h=40, w=36, seed=0):
  rng = np.random.RandomState(seed)
  return ops.to_float(tf.constant(rng.randint(0, 256, (h, w, 3)).astype(np.uint8)))


def _seed(a, b=0):
  return tf.constant([a, b], tf.int64)


@pytest.mark.parametrize("sizes,counts", [((32, 16), (2, 4)), ((224, 96), (2, 6)), ((24,), (3,))])
def test_crop_counts_sizes_and_range(sizes, counts):
  scales = [(0.14, 1.0), (0.05, 0.14)][:len(sizes)]
  crops = ops.multicrop_views(_image(250, 230), _seed(1), sizes=sizes, counts=counts, scales=scales)
  expected = [s for s, n in zip(sizes, counts) for _ in range(n)]
  assert [c.shape[:2] for c in crops] == [(s, s) for s in expected]
  for c in crops:
    c = c.numpy()
    assert c.dtype == np.float32 and c.shape[2] == 3 and c.min() >= 0.0 and c.max() <= 1.0
  # Every crop is an independent draw: no two are equal.
  same = [c.numpy() for c in crops]
  assert all(np.abs(same[i] - same[j]).max() > 1e-3 for i in range(len(same)) for j in range(i)
             if same[i].shape == same[j].shape)


def test_each_crop_is_a_simclr_view_with_its_groups_scale():
  """Crop i is `simclr_view` at child seed i with its group's size and area range."""
  img, seed = _image(), _seed(3)
  crops = ops.multicrop_views(img, seed, **KW)
  children = ops.split_seed(seed, 6)
  for i, crop in enumerate(crops):
    size, scale = (32, (0.14, 1.0)) if i < 2 else (16, (0.05, 0.14))
    ref = ops.simclr_view(img, children[i], size=size, crop_scale=scale, jitter_strength=0.5, blur_p=0.5)
    np.testing.assert_array_equal(crop.numpy(), ref.numpy())


def test_small_crops_cover_small_areas():
  """The small group's boxes come from its own scale range (checked on the crop boxes)."""
  img = _image(64, 64)
  frac = []
  for i in range(200):
    children = ops.split_seed(_seed(i), 3)
    # simclr_view splits its seed into (crop, flip, colour, blur, solarize); the box uses the first.
    box = ops.sample_crop_box(ops.split_seed(children[2], 5)[0], 64, 64, scale=(0.05, 0.14)).numpy()
    frac.append(box[2] * box[3] / 64**2)
    crop = ops.multicrop_views(img, _seed(i), sizes=(32, 16), counts=(2, 1), scales=((0.14, 1.0), (0.05, 0.14)),
                               jitter_p=0.0, gray_p=0.0, blur_p=0.0, flip_p=0.0)[2]
    ref = ops.crop_and_resize(img, box, 16)
    np.testing.assert_allclose(crop.numpy(), ref.numpy(), atol=1e-6)
  frac = np.array(frac)
  assert frac.min() >= 0.03 and frac.max() <= 0.17  # rounding of the box sides aside, in (0.05, 0.14)


def test_deterministic_per_seed_and_seed_sensitive():
  img = _image()
  a = [c.numpy() for c in ops.multicrop_views(img, _seed(5), **KW)]
  b = [c.numpy() for c in ops.multicrop_views(img, _seed(5), **KW)]
  c = [c.numpy() for c in ops.multicrop_views(img, _seed(6), **KW)]
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert all(np.abs(x - y).max() > 1e-3 for x, y in zip(a, c))


def test_eager_equals_tf_data():
  img = _image(seed=2)
  eager = [[c.numpy() for c in ops.multicrop_views(img, _seed(i, 7), **KW)] for i in range(4)]
  ds = tf.data.Dataset.range(4).map(
      lambda i: tuple(ops.multicrop_views(img, tf.stack([i, tf.constant(7, tf.int64)]), **KW)),
      num_parallel_calls=4, deterministic=True).batch(4)
  graph = next(iter(ds))
  assert len(graph) == 6
  for v in range(6):
    np.testing.assert_allclose(graph[v].numpy(), np.stack([e[v] for e in eager]), atol=1e-6)


def test_bad_spec_is_a_clear_error():
  with pytest.raises(ValueError, match="one size, count and scale range per group"):
    ops.multicrop_spec((32, 16), (2,), ((0.1, 1.0), (0.05, 0.1)))
  with pytest.raises(ValueError, match="0 < lo <= hi <= 1"):
    ops.multicrop_spec((32,), (2,), ((0.5, 0.2),))
  with pytest.raises(ValueError, match="must be positive"):
    ops.multicrop_spec((32,), (0,), ((0.1, 1.0),))


def test_resolution_groups_are_runs_of_equal_shapes():
  assert ops.resolution_groups([(32,), (32,), (16,), (16,), (16,)]) == [(0, 2), (2, 5)]
  assert ops.resolution_groups([(8,), (16,), (16,), (8,)]) == [(0, 1), (1, 3), (3, 4)]
  assert ops.resolution_groups([(8,)]) == [(0, 1)]
