"""SCAN's loss against a float64 NumPy transcription of the official SCANLoss, and on 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util


def _softmax(x):
  e = np.exp(x - x.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def np_scan(anchors, neighbors, w=5.0):
  """The official SCANLoss: BCE(sum pa pn, 1) with torch's log floor at -100, minus w * entropy
  of the clamped mean prediction."""
  pa, pn = _softmax(np.asarray(anchors, np.float64)), _softmax(np.asarray(neighbors, np.float64))
  sim = (pa * pn).sum(axis=1)
  consistency = np.mean(-np.maximum(np.log(sim), -100.0))
  c = np.maximum(pa.mean(axis=0), 1e-8)
  entropy = -np.sum(c * np.log(c))
  return consistency - w * entropy, consistency, entropy


def _data(b=16, k=10, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  a = rng.randn(b, k) * 2
  return a.astype(dtype), (a + rng.randn(b, k)).astype(dtype)


@pytest.mark.parametrize("w", [5.0, 0.0, 1.0])
def test_matches_numpy(w):
  a, n = _data()
  want, cons, ent = np_scan(a, n, w)
  got = losses.scan_loss_terms(a, n, entropy_weight=w)
  np.testing.assert_allclose(float(got["total"]), want, rtol=1e-5)
  np.testing.assert_allclose(float(got["consistency"]), cons, rtol=1e-5)
  np.testing.assert_allclose(float(got["entropy"]), ent, rtol=1e-5)
  assert float(losses.scan_loss(a, n, entropy_weight=w)) == float(got["total"])


def test_float64_and_the_clamps(x64):
  a, n = _data(dtype=np.float64)
  np.testing.assert_allclose(float(losses.scan_loss(a, n)), np_scan(a, n)[0], rtol=1e-12)
  # Disagreeing, confident pairs: s_b underflows and the consistency is floored at 100 per row;
  # a cluster nobody uses contributes 1e-8 * log(1e-8) to the entropy, not NaN.
  far = np.array([[500.0, -500.0, -500.0], [-500.0, 500.0, -500.0]])
  got = losses.scan_loss_terms(far, far[::-1], entropy_weight=0.0)
  assert float(got["consistency"]) == 100.0
  np.testing.assert_allclose(float(got["entropy"]), np.log(2) - 1e-8 * np.log(1e-8), rtol=1e-12)


def test_gradients_reach_both_logits_and_shapes_are_checked():
  a, n = _data()
  ga, gn = jax.grad(losses.scan_loss, argnums=(0, 1))(a, n)
  assert np.abs(np.asarray(ga)).max() > 1e-4 and np.abs(np.asarray(gn)).max() > 1e-4
  with pytest.raises(ValueError, match="one shape"):
    losses.scan_loss(a, n[:, :3])
  assert losses.scan_loss(jnp.asarray(a), jnp.asarray(n)).dtype == jnp.float32


@pytest.mark.parametrize("mode", _util.MODES)
def test_sharded_matches_single_device(mode):
  a, n = _data(b=32)
  fn = lambda a_, n_, axis_name: losses.scan_loss(a_, n_, axis_name=axis_name)
  _util.assert_sharded_matches_single(fn, (a, n), (True, True), (0, 1), mode=mode)
  np.testing.assert_allclose(float(losses.scan_loss(a, n)), np_scan(a, n)[0], rtol=1e-5)
