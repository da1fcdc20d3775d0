"""Colorization's soft encoding, rebalancing weights and loss against float64 NumPy transcriptions
of the paper's formulas (and the official NNEncode / PriorFactor / NonGrayMask layers), and on 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util

# A 10-unit grid of ab bins (a toy gamut): 11 x 11 centres.
BINS = np.stack(np.meshgrid(np.arange(-50, 51, 10.0), np.arange(-50, 51, 10.0), indexing="ij"), -1).reshape(-1, 2)


def np_soft_encode(ab, bins, k=5, sigma=5.0):
  """NNEncode: the k nearest bins of each colour, Gaussian weights, normalized (sorting by distance)."""
  flat = np.asarray(ab, np.float64).reshape(-1, 2)
  out = np.zeros((len(flat), len(bins)))
  for i, x in enumerate(flat):
    d = np.sqrt(((bins - x) ** 2).sum(1))
    nn = np.argsort(d, kind="stable")[:k]
    w = np.exp(-d[nn] ** 2 / (2 * sigma ** 2))
    out[i, nn] = w / w.sum()
  return out.reshape(np.shape(ab)[:-1] + (len(bins),))


def np_weights(prior, lam=0.5):
  """PriorFactor (alpha 1, gamma = lam): ((1 - lam) p + lam / Q) ** -1, then E_p[w] = 1."""
  p = np.asarray(prior, np.float64) / np.sum(prior)
  w = ((1 - lam) * p + lam / len(p)) ** -1.0
  return w / np.sum(p * w)


def np_loss(logits, ab, bins, weights, k=5, sigma=5.0, thresh=5.0):
  logits = np.asarray(logits, np.float64)
  z = np_soft_encode(ab, bins, k, sigma)
  v = weights[np.argmax(z, -1)]
  colourful = (np.abs(ab) > thresh).reshape(len(ab), -1).any(1).astype(np.float64)
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  ce = -(z * logp).sum(-1)
  return np.mean(colourful[:, None, None] * v * ce)


def _data(b=8, h=3, q=len(BINS), seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  ab = rng.uniform(-45, 45, (b, h, h, 2))
  ab[1] = rng.uniform(-4, 4, (h, h, 2))  # a grey image: no loss
  logits = rng.randn(b, h, h, q) * 2
  prior = rng.dirichlet(np.ones(q))
  return logits.astype(dtype), ab.astype(dtype), prior


def test_soft_encode_matches_numpy_and_sums_to_one():
  _, ab, _ = _data()
  for k, sigma in ((5, 5.0), (10, 5.0), (1, 2.0)):
    got = np.asarray(losses.colorization_soft_encode(ab, BINS, num_neighbors=k, sigma=sigma))
    assert got.shape == ab.shape[:-1] + (len(BINS),)
    np.testing.assert_allclose(got, np_soft_encode(ab, BINS, k, sigma), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)
    assert ((got > 0).sum(-1) == k).all()
  # A colour on a bin centre with one neighbour is a one-hot of that bin.
  np.testing.assert_array_equal(np.asarray(losses.colorization_soft_encode(np.array([10.0, -20.0]), BINS,
                                                                           num_neighbors=1)),
                                (np.abs(BINS - [10.0, -20.0]).sum(1) == 0).astype(np.float32))
  with pytest.raises(ValueError, match="num_neighbors"):
    losses.colorization_soft_encode(ab, BINS, num_neighbors=0)


def test_rebalance_weights_match_numpy_and_have_unit_expectation():
  _, _, prior = _data()
  for lam in (0.5, 0.0, 1.0):
    w = np.asarray(losses.colorization_rebalance_weights(prior, lam=lam), np.float64)
    np.testing.assert_allclose(w, np_weights(prior, lam), rtol=1e-5)
    np.testing.assert_allclose(np.sum(prior * w), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(losses.colorization_rebalance_weights(prior, lam=1.0)), 1.0, rtol=1e-5)
  # Rare colours weigh more.
  w = np.asarray(losses.colorization_rebalance_weights(prior))
  assert w[np.argmin(prior)] > w[np.argmax(prior)]


def test_loss_matches_numpy_grey_images_carry_no_loss():
  logits, ab, prior = _data()
  w = np_weights(prior)
  want = np_loss(logits, ab, BINS, w)
  got = losses.colorization_loss(logits, ab, BINS, w.astype(np.float32))
  np.testing.assert_allclose(float(got), want, rtol=1e-5)
  assert jax.jit(losses.colorization_loss)(logits, ab, BINS, w.astype(np.float32)).dtype == jnp.float32
  # The grey image's logits get no gradient; the others do.
  g = np.asarray(jax.grad(losses.colorization_loss)(logits, ab, BINS, w.astype(np.float32)))
  assert np.abs(g[1]).max() == 0.0 and np.abs(g[0]).max() > 1e-6
  # Uniform weights with 1-neighbour targets: the plain per-pixel cross-entropy on the nearest bin.
  ones = np.ones(len(BINS), np.float32)
  hard = losses.colorization_loss(logits, ab, BINS, ones, num_neighbors=1)
  np.testing.assert_allclose(float(hard), np_loss(logits, ab, BINS, np.ones(len(BINS)), k=1), rtol=1e-5)
  with pytest.raises(ValueError, match="colorization_loss expects"):
    losses.colorization_loss(logits[..., :5], ab, BINS, ones)


def test_float64(x64):
  logits, ab, prior = _data(dtype=np.float64)
  w = np_weights(prior)
  np.testing.assert_allclose(float(losses.colorization_loss(logits, ab, BINS, w)), np_loss(logits, ab, BINS, w),
                             rtol=1e-12)


def test_annealed_mean_interpolates_between_the_mean_and_the_mode():
  logits = np.log(np.array([[0.6, 0.3, 0.1]]))
  bins = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  np.testing.assert_allclose(np.asarray(losses.colorization_annealed_mean(logits, bins, temperature=1.0)),
                             [[3.0, 1.0]], rtol=1e-5)
  p = np.array([0.6, 0.3, 0.1]) ** (1 / 0.38)
  p /= p.sum()
  np.testing.assert_allclose(np.asarray(losses.colorization_annealed_mean(logits, bins)), [p @ bins], rtol=1e-5)
  np.testing.assert_allclose(np.asarray(losses.colorization_annealed_mean(logits, bins, temperature=1e-3)),
                             [[0.0, 0.0]], atol=1e-4)


@pytest.mark.parametrize("mode", _util.MODES)
def test_sharded_matches_single_device(mode):
  logits, ab, prior = _data(b=16)
  w = np_weights(prior).astype(np.float32)
  fn = lambda lg, a, axis_name: losses.colorization_loss(lg, a, BINS, w, axis_name=axis_name)
  _util.assert_sharded_matches_single(fn, (logits, ab), (True, True), (0,), mode=mode)
