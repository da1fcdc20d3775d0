"""MSN's loss against a float64 NumPy transcription of its formulas, its gradients, and on 8 devices."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util


def _norm(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def _softmax(x):
  e = np.exp(x - x.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def np_sinkhorn(q, iters):
  """MSN's distributed_sinkhorn on one device: probabilities to mass 1, then columns 1/K, rows 1/B."""
  q = q.T.copy()  # [K, B], as the official code
  k, b = q.shape
  q /= q.sum()
  for _ in range(iters):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  return (q * b).T


def np_msn(anchors, targets, protos, *, tau=0.1, t_sharp=0.25, me_max=1.0, sinkhorn=True, iters=3):
  anchors, targets, protos = (np.asarray(a, np.float64) for a in (anchors, targets, protos))
  p = _norm(protos)
  probs = _softmax(_norm(anchors) @ p.T / tau)
  t = _softmax(_norm(targets) @ p.T / tau) ** (1.0 / t_sharp)
  t /= t.sum(axis=1, keepdims=True)
  if sinkhorn:
    t = np_sinkhorn(t, iters)
  views = len(anchors) // len(targets)
  t = np.concatenate([t] * views, axis=0)
  loss = np.mean(np.sum(-t * np.log(probs), axis=1))
  pbar = probs.mean(axis=0)
  return loss + me_max * (np.sum(pbar * np.log(pbar)) + math.log(len(pbar)))


def _data(b=16, views=3, d=8, k=12, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  target = rng.randn(b, d)
  anchors = np.concatenate([2.0 * (target + 0.7 * rng.randn(b, d)) for _ in range(views)])  # view-major
  protos = rng.uniform(-1, 1, (k, d)) / np.sqrt(d)
  return anchors.astype(dtype), target.astype(dtype), protos.astype(dtype)


@pytest.mark.parametrize("kw", [{}, {"use_sinkhorn": False}, {"me_max_weight": 0.0}, {"sinkhorn_iters": 1},
                                {"temperature": 0.2, "sharpen_temperature": 0.5}])
def test_matches_numpy(kw):
  a, t, p = _data()
  got = losses.msn_loss(a, t, p, **kw)
  assert got.dtype == jnp.float32
  want = np_msn(a, t, p, tau=kw.get("temperature", 0.1), t_sharp=kw.get("sharpen_temperature", 0.25),
                me_max=kw.get("me_max_weight", 1.0), sinkhorn=kw.get("use_sinkhorn", True),
                iters=kw.get("sinkhorn_iters", 3))
  np.testing.assert_allclose(float(got), want, rtol=2e-5)


def test_float64_matches_numpy(x64):
  a, t, p = _data(dtype=np.float64)
  got = losses.msn_loss(a, t, p)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(float(got), np_msn(a, t, p), rtol=1e-12)


def test_sinkhorn_balances_probabilities_and_sharpen_is_a_power():
  q = _softmax(np.random.RandomState(1).randn(16, 4) * 3)
  got = np.asarray(losses.msn_sinkhorn(q.astype(np.float32), num_iters=3))
  np.testing.assert_allclose(got, np_sinkhorn(q, 3), rtol=1e-5)
  np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)
  # Balancing: the prototypes' total mass moves towards B/K (from far off it).
  before, after = np.abs(q.sum(0) - 16 / 4).max(), np.abs(got.sum(0) - 16 / 4).max()
  assert after < 0.5 * before, (before, after)  # measured 1.27 -> 0.34
  s = q ** 4 / (q ** 4).sum(1, keepdims=True)
  np.testing.assert_allclose(np.asarray(losses.sharpen(q.astype(np.float32), 0.25)), s, rtol=1e-5)


def test_me_max_is_zero_for_uniform_use_and_gradients_reach_anchors_and_prototypes_only():
  a, t, p = _data()
  ga, gt, gp = jax.grad(losses.msn_loss, argnums=(0, 1, 2))(a, t, p)
  assert np.all(np.asarray(gt) == 0)
  assert np.abs(np.asarray(ga)).max() > 1e-4 and np.abs(np.asarray(gp)).max() > 1e-4
  # Identical anchors on two orthogonal prototypes in equal numbers: pbar uniform, me-max 0.
  protos = np.eye(2, 4, dtype=np.float32)
  anchors = np.concatenate([np.tile(protos[:1], (4, 1)), np.tile(protos[1:], (4, 1))])
  no_me = float(losses.msn_loss(anchors, anchors, protos, me_max_weight=0.0))
  np.testing.assert_allclose(float(losses.msn_loss(anchors, anchors, protos)), no_me, atol=1e-6)


def test_rejects_mismatched_shapes():
  a, t, p = _data()
  with pytest.raises(ValueError, match="V views"):
    losses.msn_loss(a[:-1], t, p)


@pytest.mark.parametrize("mode", _util.MODES)
def test_sharded_matches_single_device(mode):
  """Each device holds its B/8 images' V views view-major; one device holds all, view-major."""
  views, b, ndev = 3, 16, _util.NDEV
  a, t, p = _data(b=b, views=views)
  local = b // ndev
  per_dev = a.reshape(views, ndev, local, -1).transpose(1, 0, 2, 3).reshape(views * b, -1)  # device-major
  single_v, single_g = jax.jit(jax.value_and_grad(losses.msn_loss, argnums=(0, 2)))(a, t, p)
  fn = lambda a_, t_, p_, axis_name: losses.msn_loss(a_, t_, p_, axis_name=axis_name)
  values, (ga, gp) = _util.run_sharded(fn, (per_dev, t, p), (True, True, False), (0, 2), mode=mode)
  np.testing.assert_allclose(values, np.full(ndev, float(single_v)), rtol=1e-5)
  np.testing.assert_allclose(float(single_v), np_msn(a, t, p), rtol=2e-5)
  ga = np.asarray(ga).reshape(ndev, views, local, -1).transpose(1, 0, 2, 3).reshape(views * b, -1)
  np.testing.assert_allclose(ga, np.asarray(single_g[0]), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(gp), np.asarray(single_g[1]), rtol=1e-4, atol=1e-6)
