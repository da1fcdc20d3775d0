"""SMoG's assignment, momentum grouping and group-level loss against float64 NumPy, and on 8 devices."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jax_ssl import losses

from . import _util


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def np_assign(z, g):
  return np.argmax(_unit(z) @ _unit(g).T, axis=1)


def np_update(g, z, a, beta):
  """Each group with members: normalize(beta g + (1 - beta) mean of its unit members)."""
  g, z = np.asarray(g, np.float64), _unit(z)
  out = g.copy()
  for k in range(g.shape[0]):
    members = z[a == k]
    if len(members):
      v = beta * g[k] + (1 - beta) * members.mean(axis=0)
      out[k] = v / np.linalg.norm(v)
  return out


def np_loss(p, g, a, t):
  logits = _unit(p) @ _unit(g).T / t
  lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
  return float(np.mean(lse - logits[np.arange(len(a)), a]))


def _data(b=32, k=6, d=6, seed=0):
  rng = np.random.default_rng(seed)
  g = np.linalg.qr(rng.normal(size=(d, d)))[0][:k].astype(np.float32)  # orthonormal groups
  # Rows near groups 0-3 only (noise 0.2 per coordinate): groups 4 and 5 get no members.
  z = (g[rng.integers(0, 4, size=b)] + 0.2 * rng.normal(size=(b, d))).astype(np.float32)
  p = rng.normal(size=(b, d)).astype(np.float32)
  return g, z, p


def test_assign_update_and_loss_match_numpy():
  g, z, p = _data()
  a = np.asarray(losses.smog_assign(z, g))
  np.testing.assert_array_equal(a, np_assign(z, g))
  assert set(a) <= {0, 1, 2, 3}
  new = np.asarray(losses.smog_group_update(g, z, a, beta=0.9))
  want = np_update(g, z, a, 0.9)
  np.testing.assert_allclose(new, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(new[4:], g[4:])  # no members: unchanged
  assert np.abs(new[:4] - g[:4]).max() > 1e-3
  np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, rtol=1e-6)
  for t in (0.1, 1.0):
    np.testing.assert_allclose(float(losses.smog_loss(p, new, a, temperature=t)), np_loss(p, new, a, t), rtol=1e-5)


def test_float64_beta_limits_and_ties(x64):
  g, z, p = (x.astype(np.float64) for x in _data())
  g = _unit(g)  # unit rows in float64: beta = 1 leaves every group as it is (up to the renormalization's ulp)
  a = np.asarray(losses.smog_assign(z, g))
  np.testing.assert_allclose(np.asarray(losses.smog_group_update(g, z, a, beta=0.99)), np_update(g, z, a, 0.99),
                             rtol=1e-12)
  np.testing.assert_allclose(float(losses.smog_loss(p, g, a, temperature=0.1)), np_loss(p, g, a, 0.1), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(losses.smog_group_update(g, z, a, beta=1.0)), g, rtol=1e-14, atol=1e-15)
  # beta 0: a group with members becomes the normalized mean of its members.
  new = np.asarray(losses.smog_group_update(g, z, a, beta=0.0))
  members = _unit(z)[a == 0].mean(0)
  np.testing.assert_allclose(new[0], members / np.linalg.norm(members), rtol=1e-12)
  # Ties go to the lowest index (two identical groups).
  assert losses.smog_assign(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])).tolist() == [1]


def test_gradient_flows_into_the_predictions_only():
  g, z, p = _data()
  a = losses.smog_assign(z, g)
  gp, gg = jax.grad(lambda p_, g_: losses.smog_loss(p_, g_, a), argnums=(0, 1))(p, g)
  assert np.abs(np.asarray(gp)).max() > 1e-3
  assert np.all(np.asarray(gg) == 0)


def test_bad_shapes_are_refused():
  g, z, p = _data()
  with pytest.raises(ValueError, match="groups"):
    losses.smog_assign(z, g[:, :3])
  with pytest.raises(ValueError, match="one assignment per row"):
    losses.smog_loss(p, g, np.zeros(3, np.int32))
  with pytest.raises(ValueError, match="beta"):
    losses.smog_group_update(g, z, np.zeros(len(z), np.int32), beta=1.5)


@pytest.mark.parametrize("mode", _util.MODES)
def test_loss_sharded_matches_single_device(mode):
  g, z, p = _data(b=32)
  a = np.asarray(losses.smog_assign(z, g))
  fn = lambda p_, a_, axis_name: losses.smog_loss(p_, g, a_, temperature=0.1, axis_name=axis_name)
  _util.assert_sharded_matches_single(fn, (p, a), (True, True), (0,), mode=mode)


def test_group_update_over_8_devices_equals_the_global_batch():
  """The members' sums and counts are global: every device ends with the one-device groups (a
  per-device update would not)."""
  g, z, _ = _data(b=32)
  a = np.asarray(losses.smog_assign(z, g))
  want = np.asarray(losses.smog_group_update(g, z, a, beta=0.9))
  f = jax.shard_map(lambda z_, a_: losses.smog_group_update(g, z_, a_, beta=0.9, axis_name=_util.AXIS),
                    mesh=_util.mesh(), in_specs=(P(_util.AXIS), P(_util.AXIS)), out_specs=P())
  np.testing.assert_allclose(np.asarray(jax.jit(f)(z, a)), want, rtol=1e-6, atol=1e-6)
  per_device = jax.pmap(lambda z_, a_: losses.smog_group_update(g, z_, a_, beta=0.9, axis_name=_util.AXIS),
                        axis_name=_util.AXIS)(z.reshape(8, 4, -1), a.reshape(8, 4))
  for d in range(8):
    np.testing.assert_allclose(np.asarray(per_device[d]), want, rtol=1e-6, atol=1e-6)
  local = np.asarray(losses.smog_group_update(g, z[:4], a[:4], beta=0.9))  # one device's batch alone
  assert np.abs(local - want).max() > 1e-4
