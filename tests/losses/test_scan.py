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


def np_selflabel(weak, strong, threshold=0.99, balance=True):
  """The official ConfidenceBasedCE in float64: confident weak predictions as targets, torch's
  weighted-mean cross-entropy with weights 1 / (count_c / n) over the masked targets."""
  p = _softmax(np.asarray(weak, np.float64))
  target, conf = p.argmax(1), p.max(1)
  mask = conf > threshold
  t = target[mask]
  if not mask.any():
    return 0.0
  weight = np.ones(p.shape[1])
  if balance:
    ids, counts = np.unique(t, return_counts=True)
    weight[ids] = 1.0 / (counts / len(t))
  s = np.asarray(strong, np.float64)[mask]
  logp = s - s.max(1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
  ce = -logp[np.arange(len(t)), t]
  return float(np.sum(weight[t] * ce) / np.sum(weight[t]))


def _selflabel_data(b=32, k=5, seed=0):
  rng = np.random.RandomState(seed)
  weak = rng.randn(b, k) * 6  # about half the rows above 0.99
  weak[:6, 0] += 15  # class 0 over-represented among the confident
  return weak.astype(np.float32), (rng.randn(b, k) * 2).astype(np.float32)


@pytest.mark.parametrize("balance", [True, False])
def test_selflabel_matches_numpy(balance):
  weak, strong = _selflabel_data()
  got = losses.scan_selflabel_terms(weak, strong, class_balance=balance)
  p = _softmax(weak.astype(np.float64))
  assert 4 < (p.max(1) > 0.99).sum() < 28  # the data exercise the mask
  np.testing.assert_allclose(float(got["total"]), np_selflabel(weak, strong, balance=balance), rtol=1e-5)
  np.testing.assert_allclose(float(got["confident"]), np.mean(p.max(1) > 0.99), rtol=1e-6)
  # Balancing changes the value when the targets are unbalanced.
  assert abs(np_selflabel(weak, strong, balance=True) - np_selflabel(weak, strong, balance=False)) > 1e-3


def test_selflabel_gradient_only_through_strong_and_empty_mask():
  weak, strong = _selflabel_data()
  gw, gs = jax.grad(losses.scan_selflabel_loss, argnums=(0, 1))(weak, strong)
  assert np.all(np.asarray(gw) == 0) and np.abs(np.asarray(gs)).max() > 1e-4
  unsure = np.zeros_like(weak)  # nothing above the threshold: loss 0, no NaN
  assert float(losses.scan_selflabel_loss(unsure, strong)) == 0.0
  assert np.all(np.isfinite(np.asarray(jax.grad(losses.scan_selflabel_loss, argnums=1)(unsure, strong))))
  with pytest.raises(ValueError, match="one shape"):
    losses.scan_selflabel_loss(weak, strong[:, :3])


@pytest.mark.parametrize("mode", _util.MODES)
def test_selflabel_sharded_matches_single_device(mode):
  weak, strong = _selflabel_data()
  fn = lambda w_, s_, axis_name: losses.scan_selflabel_loss(w_, s_, axis_name=axis_name)
  _util.assert_sharded_matches_single(fn, (weak, strong), (True, True), (1,), mode=mode)
  np.testing.assert_allclose(float(losses.scan_selflabel_loss(weak, strong)), np_selflabel(weak, strong), rtol=1e-5)
