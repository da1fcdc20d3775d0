"""MAE's patchify, random masking and masked normalized-pixel loss against float64 NumPy, and on 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util


def np_patchify(images, p):
  """Loops: patch (i, j) in raster order, flattened in (pixel row, pixel column, channel) order."""
  b, hh, ww, c = images.shape
  out = []
  for n in range(b):
    rows = []
    for i in range(hh // p):
      for j in range(ww // p):
        vals = [images[n, i * p + r, j * p + q, ch] for r in range(p) for q in range(p) for ch in range(c)]
        rows.append(vals)
    out.append(rows)
  return np.asarray(out)


def np_mae_loss(pred, target, mask, norm_pix, eps=1e-6):
  pred, target, mask = (np.asarray(a, np.float64) for a in (pred, target, mask))
  num = den = 0.0
  for n in range(pred.shape[0]):
    for l in range(pred.shape[1]):
      t = target[n, l]
      if norm_pix:
        t = (t - t.mean()) / np.sqrt(np.var(t, ddof=1) + eps)  # unbiased, as torch's var
      num += mask[n, l] * np.mean((pred[n, l] - t) ** 2)
      den += mask[n, l]
  return num / den


def test_patchify_order_and_unpatchify_inverse():
  x = np.random.RandomState(0).rand(2, 8, 12, 3).astype(np.float32)
  got = np.asarray(losses.patchify(x, 4))
  assert got.shape == (2, 6, 48)
  np.testing.assert_array_equal(got, np_patchify(x, 4))
  np.testing.assert_array_equal(np.asarray(losses.unpatchify(got, 4, (2, 3))), x)
  with pytest.raises(ValueError, match="multiple of patch_size"):
    losses.patchify(x, 5)


@pytest.mark.parametrize("num_patches,ratio,keep", [(64, 0.75, 16), (196, 0.75, 49), (196, 0.6, 78), (10, 0.0, 10)])
def test_random_mask_keeps_int_of_l_times_one_minus_ratio(num_patches, ratio, keep):
  mask, ids_keep, ids_restore = losses.mae_random_mask(jax.random.key(1), 4, num_patches, mask_ratio=ratio)
  mask, ids_keep, ids_restore = map(np.asarray, (mask, ids_keep, ids_restore))
  assert keep == int(num_patches * (1 - ratio)) and ids_keep.shape == (4, keep)
  assert mask.shape == (4, num_patches) and mask.dtype == np.float32
  np.testing.assert_array_equal(mask.sum(1), num_patches - keep)
  for b in range(4):
    assert np.all(mask[b, ids_keep[b]] == 0)
    assert len(set(ids_keep[b].tolist())) == keep
    # MAE's decoder input: [kept tokens, then mask tokens] gathered with ids_restore puts every
    # kept token back at its patch position and a mask token (-1) at every removed one.
    tokens = np.arange(num_patches)
    full = np.concatenate([tokens[ids_keep[b]], -np.ones(num_patches - keep, int)])
    np.testing.assert_array_equal(full[ids_restore[b]], np.where(mask[b] == 0, tokens, -1))


def test_random_mask_differs_per_image_and_follows_the_key():
  m1 = np.asarray(losses.mae_random_mask(jax.random.key(0), 8, 64)[0])
  m2 = np.asarray(losses.mae_random_mask(jax.random.key(0), 8, 64)[0])
  m3 = np.asarray(losses.mae_random_mask(jax.random.key(1), 8, 64)[0])
  np.testing.assert_array_equal(m1, m2)
  assert not np.array_equal(m1, m3)
  assert len({m1[b].tobytes() for b in range(8)}) == 8
  with pytest.raises(ValueError, match="mask_ratio"):
    losses.mae_random_mask(jax.random.key(0), 2, 16, mask_ratio=1.0)


def _data(b=16, l=6, d=12, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  target = rng.rand(b, l, d) * 3.0 + 1.0  # not zero-mean, not unit-variance: normalization matters
  pred = rng.randn(b, l, d)
  # An uneven mask (rows remove 1..l-1 patches): the loss is sum / sum over the whole batch.
  mask = np.zeros((b, l))
  for n in range(b):
    mask[n, rng.choice(l, 1 + n % (l - 1), replace=False)] = 1.0
  return pred.astype(dtype), target.astype(dtype), mask.astype(dtype)


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_matches_numpy(norm_pix):
  pred, target, mask = _data()
  got = losses.mae_loss(pred, target, mask, norm_pix=norm_pix)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), np_mae_loss(pred, target, mask, norm_pix), rtol=1e-5)


def test_mae_loss_float64_matches_numpy(x64):
  pred, target, mask = _data(dtype=np.float64)
  got = losses.mae_loss(pred, target, mask)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(float(got), np_mae_loss(pred, target, mask, True), rtol=1e-12)


def test_mae_loss_of_predicting_zero_is_about_one_and_only_removed_patches_count():
  pred, target, mask = _data()
  zero = float(losses.mae_loss(np.zeros_like(pred), target, mask))
  np.testing.assert_allclose(zero, (12 - 1) / 12, rtol=1e-5)  # normalized patch: sum of squares D - 1
  # Changing a visible patch's prediction changes nothing; its gradient is zero.
  g = np.asarray(jax.grad(losses.mae_loss)(pred, target, mask))
  assert np.all(g[mask == 0] == 0) and np.abs(g[mask == 1]).max() > 1e-4
  gt = np.asarray(jax.grad(losses.mae_loss, argnums=1)(pred, target, mask))
  assert np.all(gt == 0)


@pytest.mark.parametrize("mode", _util.MODES)
def test_mae_loss_sharded_matches_single_device(mode):
  pred, target, mask = _data(b=16)
  fn = lambda p, t, m, axis_name: losses.mae_loss(p, t, m, axis_name=axis_name)
  v, _ = _util.assert_sharded_matches_single(fn, (pred, target, mask), (True, True, True), (0,), mode=mode)
  np.testing.assert_allclose(float(v), np_mae_loss(pred, target, mask, True), rtol=1e-5)
