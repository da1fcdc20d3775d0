"""Exemplar-CNN's surrogate classes: the transformations against independent computations
(identity ranges give the seed patch, principal-component contrast scales deviations, HSV powers
vs Python's colorsys), the pixel PCA, and seeds drawn from high-gradient regions of distinct images."""

import colorsys

import numpy as np
import pytest
import tensorflow as tf

from jax_ssl import data
from jax_ssl.data import ops

IDENTITY = dict(translation=0.0, scale=(1.0, 1.0), rotation=0.0, pc_scale=(1.0, 1.0), sv_power=(1.0, 1.0),
                sv_mult=(1.0, 1.0), sv_add=(0.0, 0.0), hue=0.0)


def _window(seed=0, side=16):
  rng = np.random.default_rng(seed)
  return rng.uniform(0.05, 0.95, (side, side, 3)).astype(np.float32)


def _apply(window, seed=(1, 2), **kw):
  mean, axes = ops.pixel_pca(window)
  return ops.exemplar_transform(tf.constant(window), tf.constant(seed, tf.int64), size=8, pca_mean=mean,
                                pca_axes=axes, **{**IDENTITY, **kw}).numpy()


def test_identity_ranges_give_the_seed_patch_and_contrast_1_scales_deviations():
  w = _window()
  np.testing.assert_allclose(_apply(w), w[4:12, 4:12], atol=2e-5)
  # Every principal coordinate doubled = every pixel's deviation from the mean doubled (orthonormal axes).
  mean, _ = ops.pixel_pca(w)
  want = np.clip(mean + 2 * (w[4:12, 4:12] - mean), 0, 1)
  np.testing.assert_allclose(_apply(w, pc_scale=(2.0, 2.0)), want, atol=3e-5)


def test_contrast_2_raises_saturation_and_value_to_the_power():
  w = _window(1)
  got = _apply(w, sv_power=(2.0, 2.0), sv_mult=(1.2, 1.2), sv_add=(0.05, 0.05))
  want = np.empty((8, 8, 3))
  for i in range(8):
    for j in range(8):
      h, s, v = colorsys.rgb_to_hsv(*w[4 + i, 4 + j].astype(np.float64))
      want[i, j] = colorsys.hsv_to_rgb(h, min(1.0, s ** 2 * 1.2 + 0.05), min(1.0, v ** 2 * 1.2 + 0.05))
  np.testing.assert_allclose(got, want, atol=1e-4)


def test_random_members_stay_in_range_and_differ_by_seed():
  w = _window(2, side=32)
  mean, axes = ops.pixel_pca(w)
  fn = tf.function(lambda s: ops.exemplar_transform(tf.constant(w), s, size=16, pca_mean=mean, pca_axes=axes))
  outs = np.stack([fn(tf.constant([k, 0], tf.int64)).numpy() for k in range(6)])
  assert outs.shape == (6, 16, 16, 3) and outs.min() >= 0 and outs.max() <= 1
  assert len({o.tobytes() for o in outs}) == 6
  np.testing.assert_array_equal(fn(tf.constant([3, 0], tf.int64)).numpy(), outs[3])  # stateless


def test_pixel_pca_is_the_covariance_eigenbasis_largest_first():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5000, 3)) @ np.diag([3.0, 1.0, 0.3]) @ np.linalg.qr(rng.normal(size=(3, 3)))[0] * 0.05 + 0.5
  mean, axes = ops.pixel_pca(x)
  np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-5)
  _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
  np.testing.assert_allclose(np.abs(axes[:, 0] @ vt[0]), 1.0, atol=1e-4)
  np.testing.assert_allclose(mean, x.mean(0), atol=1e-6)


def test_seeds_come_from_high_gradient_regions_of_distinct_images():
  rng = np.random.default_rng(0)
  images = np.full((20, 32, 32, 3), 128, np.uint8)
  images[:, :, 16:] = rng.integers(0, 256, (20, 32, 16, 3))  # texture on the right half only
  src = data.ArraySource(images, np.zeros(20, np.int32), ["x"], "halves")
  seeds = data.exemplar_seeds(src, 10, patch=8, seed=0)
  assert seeds.images.shape == (10, 16, 16, 3) and list(seeds.labels) == list(range(10))
  centres = seeds.images[:, 4:12, 4:12].astype(np.float64)
  # A seed patch (the window's centre) on the flat half would have zero variance; all are textured.
  assert np.all(centres.std(axis=(1, 2, 3)) > 30)
  more = data.exemplar_seeds(src, 30, patch=8, seed=0)  # more seeds than images: every image, then again
  assert len(more) == 30
  with pytest.raises(data.DataError, match="at least one seed"):
    data.exemplar_seeds(src, 0, patch=8)
