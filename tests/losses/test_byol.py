"""BYOL's regression loss against a float64 NumPy reference, its stop-gradient, and on 8 devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses

from . import _util


def np_byol(p, z):
  """Mean over rows of 2 - 2 cos(p_i, z_i)."""
  p, z = p.astype(np.float64), z.astype(np.float64)
  cos = [p[i] @ z[i] / (np.linalg.norm(p[i]) * np.linalg.norm(z[i])) for i in range(len(p))]
  return float(np.mean([2.0 - 2.0 * c for c in cos]))


def _data(n=16, d=8, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  p = rng.randn(n, d)
  z = 2.0 * (p + 0.8 * rng.randn(n, d))  # other scale: the loss must normalise
  return p.astype(dtype), z.astype(dtype)


def test_matches_numpy():
  p, z = _data()
  got = losses.byol_loss(p, z)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), np_byol(p, z), rtol=1e-5)


def test_float64_matches_numpy(x64):
  p, z = _data(dtype=np.float64)
  got = losses.byol_loss(p, z)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(float(got), np_byol(p, z), rtol=1e-12)


def test_extremes():
  p, _ = _data()
  np.testing.assert_allclose(float(losses.byol_loss(p, 3 * p)), 0.0, atol=1e-6)
  np.testing.assert_allclose(float(losses.byol_loss(p, -p)), 4.0, rtol=1e-6)


def test_target_gets_no_gradient():
  p, z = _data()
  gp, gz = jax.grad(losses.byol_loss, argnums=(0, 1))(p, z)
  assert np.all(np.asarray(gz) == 0)
  assert np.abs(np.asarray(gp)).max() > 1e-4
  assert np.all(np.isfinite(np.asarray(gp)))


def test_jit_same_value():
  p, z = _data()
  np.testing.assert_allclose(float(jax.jit(losses.byol_loss)(p, z)),
                             float(losses.byol_loss(p, z)), rtol=1e-6)


def test_bfloat16_inputs_compute_in_float32():
  p, z = _data()
  pb, zb = jnp.asarray(p, jnp.bfloat16), jnp.asarray(z, jnp.bfloat16)
  got = losses.byol_loss(pb, zb)
  assert got.dtype == jnp.float32
  want = np_byol(np.asarray(pb.astype(jnp.float32)), np.asarray(zb.astype(jnp.float32)))
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


@pytest.mark.parametrize("mode", _util.MODES)
def test_sharded_matches_single_device(mode):
  p, z = _data(n=32)
  v, (_, gz) = _util.assert_sharded_matches_single(
      losses.byol_loss, (p, z), (True, True), (0, 1), mode=mode)
  assert np.all(np.asarray(gz) == 0)
  np.testing.assert_allclose(float(v), np_byol(p, z), rtol=1e-5)


def test_rejects_mismatched_shapes():
  with pytest.raises(ValueError):
    losses.byol_loss(np.ones((4, 3)), np.ones((4, 2)))
