"""Context Encoders' masks: the centre geometry of the official code (128 px: centre 64, hole 56,
10x band of 4 px) and random-region masks (20-30% of the image, smooth blobs, stateless)."""

import numpy as np
import pytest
import tensorflow as tf

from jax_ssl.data import ops


def test_center_region_and_masks_follow_the_official_geometry():
  assert ops.center_region(128) == (32, 64, 4)  # real_center = [1 + 128/4, 128/2 + 128/4] (1-based)
  hole, weights = ops.center_masks(128, overlap=4)
  rows = np.flatnonzero(hole[:, 64, 0])
  assert hole.shape == (128, 128, 1) and rows[0] == 36 and rows[-1] == 91  # 1 + 32 + 4 ... 64 + 32 - 4 (1-based)
  assert hole.sum() == 56 * 56 and np.all(hole[rows[0]:rows[-1] + 1, rows[0]:rows[-1] + 1] == 1)
  assert weights.shape == (64, 64, 1) and np.all(weights[4:60, 4:60] == 1.0)
  assert (weights == 10.0).sum() == 64 * 64 - 56 * 56
  # The hole is the band-free part of the predicted centre.
  np.testing.assert_array_equal(hole[32:96, 32:96] == 1, weights == 1)
  assert ops.center_region(32, overlap=1) == (8, 16, 1)
  with pytest.raises(ValueError, match="leaves no hole"):
    ops.center_region(32, overlap=8)


def test_random_region_masks_cover_20_to_30_percent_in_smooth_blobs():
  fn = tf.function(lambda s: ops.random_region_mask(s, 64))
  masks = np.stack([fn(tf.constant([i, 3])).numpy()[..., 0] for i in range(40)])
  frac = masks.mean(axis=(1, 2))
  assert set(np.unique(masks)) == {0.0, 1.0}
  assert np.mean((frac > 0.2) & (frac < 0.3)) >= 0.95, frac  # the official acceptance window
  # Blobs, not pixel noise: almost every pixel has its right-hand neighbour's value (iid noise at
  # density 0.25 would agree 62.5% of the time).
  assert np.mean(masks[:, :, 1:] == masks[:, :, :-1]) > 0.9
  assert len({m.tobytes() for m in masks}) == 40
  # Stateless: the same seed gives the same mask, eagerly and inside tf.data.
  again = next(iter(tf.data.Dataset.from_tensors(tf.constant([5, 3])).map(lambda s: ops.random_region_mask(s, 64))))
  np.testing.assert_array_equal(again.numpy()[..., 0], masks[5])
