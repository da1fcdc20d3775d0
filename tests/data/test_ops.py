"""Augmentation ops: shapes, ranges, determinism per seed, eager == tf.data, and conventions."""

import numpy as np
import pytest
import tensorflow as tf

from jax_ssl.data import ops


def _image(h=32, w=32, seed=0):
  rng = np.random.RandomState(seed)
  return tf.constant(rng.randint(0, 256, (h, w, 3)).astype(np.uint8))


def _seed(a, b=0):
  return tf.constant([a, b], tf.int64)


VIEW_KW = dict(size=24, jitter_strength=1.0, blur_p=0.5, solarize_p=0.2)


def test_to_float_range_and_dtype():
  x = ops.to_float(tf.constant([[[0, 128, 255]]], tf.uint8))
  assert x.dtype == tf.float32
  np.testing.assert_allclose(x.numpy(), [[[0.0, 128 / 255, 1.0]]], rtol=1e-6)


@pytest.mark.parametrize("shape", [(32, 32), (17, 40), (300, 200)])
def test_simclr_view_shape_range_and_determinism(shape):
  img = ops.to_float(_image(*shape))
  outs = [ops.simclr_view(img, _seed(i), **VIEW_KW).numpy() for i in range(6)]
  again = ops.simclr_view(img, _seed(3), **VIEW_KW).numpy()
  for o in outs:
    assert o.shape == (24, 24, 3) and o.dtype == np.float32
    assert o.min() >= 0.0 and o.max() <= 1.0
  np.testing.assert_array_equal(again, outs[3])
  # Different seeds give different views.
  assert all(np.abs(outs[i] - outs[j]).max() > 1e-3 for i in range(6) for j in range(i))


def test_eager_equals_tf_data():
  img = ops.to_float(_image(40, 36, seed=1))
  eager = np.stack([ops.simclr_view(img, _seed(i, 7), **VIEW_KW).numpy() for i in range(8)])
  ds = tf.data.Dataset.range(8).map(
      lambda i: ops.simclr_view(img, tf.stack([i, tf.constant(7, tf.int64)]), **VIEW_KW),
      num_parallel_calls=4, deterministic=True).batch(8)
  graph = next(iter(ds)).numpy()
  np.testing.assert_allclose(graph, eager, atol=1e-6)


@pytest.mark.parametrize("h,w", [(32, 32), (17, 40), (5, 300), (224, 160)])
def test_crop_box_inside_image_and_scale(h, w):
  fracs = []
  for i in range(300):
    top, left, bh, bw = ops.sample_crop_box(_seed(i), h, w, scale=(0.08, 1.0)).numpy()
    assert 0 <= top and 0 <= left and bh >= 1 and bw >= 1
    assert top + bh <= h and left + bw <= w
    fracs.append(bh * bw / (h * w))
  fracs = np.array(fracs)
  if h == w and h >= 32:  # nearly every draw is accepted: area fraction ~ U[0.08, 1]
    assert 0.06 <= fracs.min() < 0.2 and fracs.max() > 0.9
    assert 0.45 < fracs.mean() < 0.62


def test_crop_box_fallback_is_central_and_within_ratio():
  # A 1-pixel-high strip: no draw with ratio in [3/4, 4/3] fits, so the central fallback is used.
  top, left, bh, bw = ops.sample_crop_box(_seed(0), 1, 100).numpy()
  assert (top, bh) == (0, 1)
  assert bw == 1 and left == (100 - 1) // 2  # clamped to ratio 4/3 -> round(1.33) = 1


def test_crop_and_resize_nearest_keeps_mask_values():
  mask = tf.constant(np.repeat(np.arange(8, dtype=np.int32), 8).reshape(8, 8, 1))
  out = ops.crop_and_resize(mask, [2, 0, 4, 8], 16, method="nearest").numpy()
  assert out.dtype == np.int32 and out.shape == (16, 16, 1)
  assert set(np.unique(out)) <= set(range(8))
  # Identity box + same size is exactly the input.
  img = ops.to_float(_image(10, 12))
  same = ops.crop_and_resize(img, [0, 0, 10, 12], (10, 12)).numpy()
  np.testing.assert_allclose(same, img.numpy(), atol=1e-6)


def test_crop_and_flip_follow_image_and_mask_together():
  """The sampler/apply split lets a mask go through the same geometry as its image."""
  img = tf.constant(np.arange(64, dtype=np.float32).reshape(8, 8, 1) / 64.0)
  mask = tf.constant(np.arange(64, dtype=np.int32).reshape(8, 8, 1))
  box = ops.sample_crop_box(_seed(5), 8, 8, scale=(0.3, 0.6))
  flip = ops.sample_flip(_seed(6), p=1.0)
  a = ops.flip_left_right(ops.crop_and_resize(img, box, box[2:].numpy().tolist()), flip).numpy()
  m = ops.flip_left_right(ops.crop_and_resize(mask, box, box[2:].numpy().tolist(), method="nearest"), flip)
  np.testing.assert_allclose(a * 64.0, m.numpy().astype(np.float32), atol=1e-4)


def test_flip_and_rot90_conventions():
  x = tf.constant(np.arange(4, dtype=np.float32).reshape(2, 2, 1))
  np.testing.assert_array_equal(ops.flip_left_right(x, tf.constant(True)).numpy()[..., 0], [[1, 0], [3, 2]])
  np.testing.assert_array_equal(ops.flip_left_right(x, tf.constant(False)).numpy(), x.numpy())
  for k in range(4):
    np.testing.assert_array_equal(ops.rot90(x, k).numpy(), np.rot90(x.numpy(), k, axes=(0, 1)))
  # 90 degrees counter-clockwise: the top-right pixel goes to the top-left.
  assert ops.rot90(x, 1).numpy()[0, 0, 0] == 1.0
  flips = [bool(ops.sample_flip(_seed(i)).numpy()) for i in range(400)]
  assert 0.4 < np.mean(flips) < 0.6


def test_color_ops_ranges_and_identities():
  img = ops.to_float(_image(16, 16, seed=2))
  # Zero strength is the identity.
  np.testing.assert_allclose(ops.color_jitter(img, _seed(1), strength=0.0).numpy(), img.numpy())
  for i in range(10):
    out = ops.color_jitter(img, _seed(i), strength=1.0).numpy()
    assert out.min() >= 0 and out.max() <= 1 and out.shape == (16, 16, 3)
  # Brightness alone multiplies by a factor in [0.2, 1.8] (before clipping).
  b = ops.color_jitter(img, _seed(3), brightness=0.8, contrast=0, saturation=0, hue=0).numpy()
  ratio = b[img.numpy() > 0.05] / img.numpy()[img.numpy() > 0.05]
  unclipped = b[img.numpy() > 0.05] < 1.0
  assert np.ptp(ratio[unclipped]) < 1e-4 and 0.2 <= ratio[unclipped][0] <= 1.8
  g = ops.grayscale(img).numpy()
  np.testing.assert_allclose(g[..., 0], g[..., 1])
  np.testing.assert_allclose(g[..., 0], tf.image.rgb_to_grayscale(img).numpy()[..., 0], atol=1e-6)
  grays = [np.allclose(o[..., 0], o[..., 2]) for o in
           (ops.random_grayscale(img, _seed(i), p=0.2).numpy() for i in range(200))]
  assert 0.1 < np.mean(grays) < 0.3


def test_random_order_differs_from_fixed_order():
  img = ops.to_float(_image(16, 16, seed=4))
  outs = {ops.color_jitter(img, _seed(i), strength=1.0).numpy().tobytes() for i in range(5)}
  assert len(outs) == 5
  fixed = ops.color_jitter(img, _seed(0), strength=1.0, random_order=False).numpy()
  assert fixed.min() >= 0 and fixed.max() <= 1


def test_gaussian_blur_preserves_constant_and_smooths():
  const = tf.fill([20, 20, 3], 0.3)
  np.testing.assert_allclose(ops.gaussian_blur(const, 1.5, kernel_size=5).numpy(), 0.3, atol=1e-6)
  img = ops.to_float(_image(20, 20, seed=5))
  blurred = ops.gaussian_blur(img, 2.0, kernel_size=7).numpy()
  assert blurred.shape == (20, 20, 3)
  assert np.abs(np.diff(blurred, axis=1)).mean() < 0.5 * np.abs(np.diff(img.numpy(), axis=1)).mean()
  # Against a direct NumPy separable convolution with reflect padding.
  x = img.numpy().astype(np.float64)
  r = 3
  k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * 2.0 ** 2))
  k /= k.sum()
  p = np.pad(x, [(r, r), (r, r), (0, 0)], mode="reflect")
  rows = sum(k[i] * p[i:i + 20] for i in range(2 * r + 1))
  ref = sum(k[i] * rows[:, i:i + 20] for i in range(2 * r + 1))
  np.testing.assert_allclose(blurred, np.clip(ref, 0, 1), atol=1e-5)


def test_solarize_and_normalize():
  x = tf.constant([[[0.1, 0.5, 0.9]]])
  np.testing.assert_allclose(ops.solarize(x).numpy(), [[[0.1, 0.5, 0.1]]], atol=1e-7)
  n = ops.normalize(x, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0)).numpy()
  np.testing.assert_allclose(n, [[[-1.6, 0.0, 0.4]]], atol=1e-6)


def test_probability_zero_options_are_identity():
  img = ops.to_float(_image(24, 24, seed=6))
  view = ops.simclr_view(img, _seed(9), size=24, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0),
                         flip_p=0.0, jitter_p=0.0, gray_p=0.0).numpy()
  np.testing.assert_allclose(view, img.numpy(), atol=1e-6)
