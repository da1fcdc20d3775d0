"""Sinkhorn-Knopp and the SwAV loss against float64 NumPy transcriptions of main_swav.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util


def np_sinkhorn(scores, epsilon, num_iters, dtype=np.float64):
  """distributed_sinkhorn of facebookresearch/swav, one process, in plain exp arithmetic."""
  with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
    q = np.exp(scores.astype(dtype) / dtype(epsilon)).T  # [K, B]
    b = q.shape[1]
    k = q.shape[0]
    q /= np.sum(q)
    for _ in range(num_iters):
      q /= np.sum(q, axis=1, keepdims=True)
      q /= k
      q /= np.sum(q, axis=0, keepdims=True)
      q /= b
    q *= b
  return q.T


def _normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_swav(z_crops, prototypes, temperature, epsilon, num_iters, assign_crops, queue=None):
  """The loss of main_swav.py's train(), loops over crops and samples."""
  c = _normalize(prototypes.astype(np.float64))
  out = [_normalize(z.astype(np.float64)) @ c.T for z in z_crops]
  b = z_crops[0].shape[0]
  n_crops = len(z_crops)
  loss = 0.0
  for i, crop_id in enumerate(assign_crops):
    s = out[crop_id]
    if queue is not None:
      s = np.concatenate([_normalize(queue[i].astype(np.float64)) @ c.T, s])
    q = np_sinkhorn(s, epsilon, num_iters)[-b:]
    subloss = 0.0
    for v in range(n_crops):
      if v == crop_id:
        continue
      x = out[v] / temperature
      log_p = x - np.log(np.sum(np.exp(x), axis=1, keepdims=True))
      subloss -= np.mean([np.sum(q[j] * log_p[j]) for j in range(b)])
    loss += subloss / (n_crops - 1)
  return loss / len(assign_crops)


def _scores(b=16, k=6, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  return np.tanh(rng.randn(b, k)).astype(dtype)  # cosine-like, in (-1, 1)


def _swav_data(b=16, d=8, k=5, n_crops=4, queue_len=8, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  base = rng.randn(b, d)
  z_crops = [(base + 0.7 * rng.randn(b, d)).astype(dtype) for _ in range(n_crops)]
  prototypes = rng.randn(k, d).astype(dtype)
  queue = [_normalize(rng.randn(queue_len, d)).astype(dtype) for _ in range(2)]
  return z_crops, prototypes, queue


# ----------------------------------------------------------------------------- sinkhorn


@pytest.mark.parametrize("epsilon,num_iters", [(0.05, 3), (0.1, 1), (0.03, 10)])
def test_sinkhorn_matches_numpy(epsilon, num_iters):
  s = _scores()
  got = losses.sinkhorn(s, epsilon=epsilon, num_iters=num_iters)
  assert got.dtype == jnp.float32 and got.shape == s.shape
  np.testing.assert_allclose(np.asarray(got), np_sinkhorn(s, epsilon, num_iters), atol=2e-5)


def test_sinkhorn_jit_same_value():
  s = _scores()
  eager = losses.sinkhorn(s, epsilon=0.05)
  jitted = jax.jit(functools.partial(losses.sinkhorn, epsilon=0.05))(s)
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), atol=1e-6)


def test_sinkhorn_marginals():
  s = _scores(b=32, k=4)
  b, k = s.shape
  q = np.asarray(losses.sinkhorn(s, epsilon=0.05, num_iters=3))
  np.testing.assert_allclose(q.sum(axis=1), np.ones(b), atol=1e-5)  # exact after a row step
  # Three iterations at epsilon=0.05 are far from converged (the official arithmetic gives
  # column sums [7.5 8.4 4.8 11.3] here, not 8 +- 10%): same sums as the official code, and
  # closer to equipartition than the plain per-row softmax they start from.
  np.testing.assert_allclose(q.sum(axis=0), np_sinkhorn(s, 0.05, 3).sum(axis=0), atol=1e-4)
  softmax = np.exp(s / 0.05 - np.max(s / 0.05, axis=1, keepdims=True))
  softmax /= softmax.sum(axis=1, keepdims=True)
  assert np.abs(q.sum(axis=0) - b / k).max() < 0.8 * np.abs(softmax.sum(axis=0) - b / k).max()
  q = np.asarray(losses.sinkhorn(s, epsilon=0.05, num_iters=200))
  np.testing.assert_allclose(q.sum(axis=1), np.ones(b), atol=1e-5)
  np.testing.assert_allclose(q.sum(axis=0), np.full(k, b / k), atol=1e-3)


def test_sinkhorn_small_epsilon_is_finite_where_official_float32_overflows():
  s = _scores()
  with np.errstate(all="ignore"):
    official32 = np_sinkhorn(s, 0.005, 3, dtype=np.float32)
  assert not np.all(np.isfinite(official32))  # the failure this implementation avoids
  q = np.asarray(losses.sinkhorn(s, epsilon=0.005, num_iters=3))
  assert np.all(np.isfinite(q))
  np.testing.assert_allclose(q.sum(axis=1), np.ones(s.shape[0]), atol=1e-5)
  # float64 has the range the official arithmetic needs here (exp(200)): same codes.
  np.testing.assert_allclose(q, np_sinkhorn(s, 0.005, 3), atol=1e-4)


def test_sinkhorn_has_no_gradient():
  s = _scores()
  w = np.random.RandomState(1).randn(*s.shape).astype(np.float32)
  g = jax.grad(lambda x: jnp.sum(losses.sinkhorn(x) * w))(s)
  assert np.all(np.asarray(g) == 0)


def test_sinkhorn_vmap():
  s = np.stack([_scores(seed=i) for i in range(3)])
  got = jax.vmap(losses.sinkhorn)(s)
  for i in range(3):
    np.testing.assert_allclose(np.asarray(got[i]), np_sinkhorn(s[i], 0.05, 3), atol=2e-5)


@pytest.mark.parametrize("mode", _util.MODES)
def test_sinkhorn_sharded_matches_single_device(mode):
  """Column sums and B are global: the codes of 8 shards equal those of the global batch."""
  s = _scores(b=32, k=6)
  want = np_sinkhorn(s, 0.05, 3)
  f = functools.partial(losses.sinkhorn, epsilon=0.05, num_iters=3, axis_name=_util.AXIS)
  spec = _util.P(_util.AXIS)
  if mode == "pmap":
    got = jax.pmap(f, axis_name=_util.AXIS)(s.reshape(8, 4, 6)).reshape(32, 6)
  else:
    got = jax.jit(jax.shard_map(f, mesh=_util.mesh(), in_specs=spec, out_specs=spec,
                                check_vma=mode == "shard_map"))(s)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5)
  # Per-shard Sinkhorn (no axis_name) would give different codes: the test can tell.
  local = np.concatenate([np_sinkhorn(s[i * 4:(i + 1) * 4], 0.05, 3) for i in range(8)])
  assert np.abs(local - want).max() > 1e-2


def test_sinkhorn_float64(x64):
  s = _scores(dtype=np.float64)
  got = losses.sinkhorn(s, epsilon=0.05)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(np.asarray(got), np_sinkhorn(s, 0.05, 3), rtol=0, atol=1e-10)


def test_sinkhorn_bfloat16_gives_float32():
  s = _scores()
  got = losses.sinkhorn(jnp.asarray(s, jnp.bfloat16))
  assert got.dtype == jnp.float32
  sb = np.asarray(jnp.asarray(s, jnp.bfloat16).astype(jnp.float32))
  np.testing.assert_allclose(np.asarray(got), np_sinkhorn(sb, 0.05, 3), atol=2e-5)


# ----------------------------------------------------------------------------- swav_loss


@pytest.mark.parametrize("use_queue", [False, True])
@pytest.mark.parametrize("assign_crops", [(0, 1), (0,)])
def test_swav_matches_numpy(use_queue, assign_crops):
  z, c, queue = _swav_data()
  queue = queue[:len(assign_crops)] if use_queue else None
  got = losses.swav_loss(z, c, temperature=0.1, epsilon=0.05, num_iters=3,
                         assign_crops=assign_crops, queue=queue)
  want = np_swav(z, c, 0.1, 0.05, 3, assign_crops, queue)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_swav_queue_changes_the_codes():
  z, c, queue = _swav_data()
  with_q = float(losses.swav_loss(z, c, queue=queue))
  without = float(losses.swav_loss(z, c))
  assert abs(with_q - without) > 1e-4
  codes = losses.swav_codes(z, c, queue=queue)
  assert len(codes) == 2 and codes[0].shape == (16, 5)
  np.testing.assert_allclose(np.asarray(codes[1]), np.asarray(
      np_sinkhorn(np.concatenate([_normalize(queue[1]) @ _normalize(c).T,
                                  _normalize(z[1]) @ _normalize(c).T]), 0.05, 3)[-16:]),
      atol=2e-5)


def test_swav_jit_and_finite_grads():
  z, c, queue = _swav_data()
  f = functools.partial(losses.swav_loss, temperature=0.1, queue=queue)
  np.testing.assert_allclose(float(jax.jit(f)(z, c)), float(f(z, c)), rtol=1e-6)
  gz, gc = _util.assert_finite_grads(f, (z, c), (0, 1))
  assert all(np.abs(np.asarray(g)).max() > 1e-4 for g in gz)
  assert np.abs(np.asarray(gc)).max() > 1e-4


@pytest.mark.parametrize("mode", _util.MODES)
def test_swav_sharded_with_queue_matches_single_device(mode):
  """Each device holds its queue shard; Sinkhorn sums run over all devices' rows."""
  z, c, queue = _swav_data(b=32, queue_len=16)

  def f(z_crops, prototypes, q, axis_name):
    return losses.swav_loss(z_crops, prototypes, temperature=0.1, epsilon=0.05, queue=q,
                            axis_name=axis_name)

  v, _ = _util.assert_sharded_matches_single(f, (z, c, queue), (True, False, True), (0, 1),
                                             mode=mode)
  np.testing.assert_allclose(float(v), np_swav(z, c, 0.1, 0.05, 3, (0, 1), queue), rtol=1e-5)


def test_swav_bfloat16_gives_float32():
  z, c, queue = _swav_data()
  zb = [jnp.asarray(x, jnp.bfloat16) for x in z]
  got = losses.swav_loss(zb, jnp.asarray(c, jnp.bfloat16), queue=queue)
  assert got.dtype == jnp.float32
  f32 = lambda x: np.asarray(jnp.asarray(x, jnp.bfloat16).astype(jnp.float32))
  want = np_swav([f32(x) for x in z], f32(c), 0.1, 0.05, 3, (0, 1), queue)
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_swav_float64_matches_numpy_to_1e10(x64):
  z, c, queue = _swav_data(dtype=np.float64)
  got = losses.swav_loss(z, c, queue=queue)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(float(got), np_swav(z, c, 0.1, 0.05, 3, (0, 1), queue),
                             rtol=0, atol=1e-10)


def test_swav_rejects_bad_arguments():
  z, c, queue = _swav_data()
  with pytest.raises(ValueError):
    losses.swav_loss(z[:1], c)
  with pytest.raises(ValueError):
    losses.swav_loss(z, c, assign_crops=(0, 7))
  with pytest.raises(ValueError):
    losses.swav_loss(z, c, queue=queue[:1])
