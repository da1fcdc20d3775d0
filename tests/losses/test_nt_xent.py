"""NT-Xent against an independent float64 NumPy loop, under jit/grad/vmap, and on 8 devices."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jax_ssl import losses

from . import _util


def np_nt_xent(z1, z2, temperature, normalize=True):
  """Mean over the 2N anchors of -log softmax(positive) among the 2N-1 other rows."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  if normalize:
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n2 = z.shape[0]
  n = n2 // 2
  total = 0.0
  for i in range(n2):
    pos = (i + n) % n2
    others = [j for j in range(n2) if j != i]
    logits = np.array([z[i] @ z[j] / temperature for j in others])
    m = logits.max()
    lse = m + np.log(np.sum(np.exp(logits - m)))
    total += lse - z[i] @ z[pos] / temperature
  return total / n2


def np_simclr_official(z1, z2, temperature):
  """The structure of SimCLR's add_contrastive_loss: loss_a + loss_b, self masked by 1e9."""
  h1 = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
  h2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
  n = h1.shape[0]
  masks = np.eye(n)
  logits_aa = h1 @ h1.T / temperature - masks * 1e9
  logits_bb = h2 @ h2.T / temperature - masks * 1e9
  logits_ab = h1 @ h2.T / temperature
  logits_ba = h2 @ h1.T / temperature

  def ce(logits):  # labels = one_hot(arange(n), 2n): the positive is column i
    lse = np.log(np.sum(np.exp(logits), axis=1))
    return np.mean(lse - logits[np.arange(n), np.arange(n)])

  return ce(np.concatenate([logits_ab, logits_aa], 1)) + ce(
      np.concatenate([logits_ba, logits_bb], 1))


def _data(n=16, d=8, seed=0, dtype=np.float32):
  rng = np.random.RandomState(seed)
  z1 = rng.randn(n, d)
  z2 = z1 + 0.5 * rng.randn(n, d)  # correlated views, so the loss is far from log(2N-1)
  return z1.astype(dtype), z2.astype(dtype)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_numpy(temperature, normalize):
  z1, z2 = _data()
  if not normalize:
    z1, z2 = z1 / 3, z2 / 3  # keep raw dot-product logits moderate
  got = losses.nt_xent(z1, z2, temperature=temperature, normalize=normalize)
  want = np_nt_xent(z1, z2, temperature, normalize)
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_official_simclr_returns_twice_this():
  z1, z2 = _data()
  want = np_simclr_official(z1.astype(np.float64), z2.astype(np.float64), 0.2)
  np.testing.assert_allclose(2 * float(losses.nt_xent(z1, z2, temperature=0.2)), want, rtol=1e-5)


def test_jit_same_value():
  z1, z2 = _data()
  eager = losses.nt_xent(z1, z2, temperature=0.2)
  jitted = jax.jit(functools.partial(losses.nt_xent, temperature=0.2))(z1, z2)
  np.testing.assert_allclose(float(jitted), float(eager), rtol=1e-6)


def test_grads_finite_and_match_finite_differences(x64):
  z1, z2 = _data(n=4, d=3, dtype=np.float64)
  f = functools.partial(losses.nt_xent, temperature=0.3)
  g1, _ = _util.assert_finite_grads(f, (z1, z2), (0, 1))
  h = 1e-6
  for idx in [(0, 0), (2, 1), (3, 2)]:
    dz = np.zeros_like(z1)
    dz[idx] = h
    fd = (float(f(z1 + dz, z2)) - float(f(z1 - dz, z2))) / (2 * h)
    np.testing.assert_allclose(float(g1[idx]), fd, rtol=1e-6, atol=1e-9)


def test_vmap_over_independent_batches():
  z1, z2 = _data(n=24)
  z1, z2 = z1.reshape(3, 8, -1), z2.reshape(3, 8, -1)
  got = jax.vmap(functools.partial(losses.nt_xent, temperature=0.2))(z1, z2)
  want = [np_nt_xent(a, b, 0.2) for a, b in zip(z1, z2)]
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)


@pytest.mark.parametrize("mode", _util.MODES)
def test_sharded_matches_single_device(mode):
  z1, z2 = _data(n=32)
  f = functools.partial(losses.nt_xent, temperature=0.1)
  v, _ = _util.assert_sharded_matches_single(f, (z1, z2), (True, True), (0, 1), mode=mode)
  np.testing.assert_allclose(float(v), np_nt_xent(z1, z2, 0.1), rtol=1e-5)


def test_sharded_over_two_mesh_axes():
  """A tuple axis_name (e.g. data x fsdp) gathers negatives over both axes, in mesh order."""
  z1, z2 = _data(n=16)
  mesh = Mesh(np.array(jax.devices()[:8]).reshape(2, 4), ("a", "b"))

  def body(a, b):
    return jax.value_and_grad(
        lambda x, y: losses.nt_xent(x, y, temperature=0.1, axis_name=("a", "b")),
        argnums=(0, 1))(a, b)

  spec = P(("a", "b"))
  v, (g1, g2) = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(spec, spec),
                                      out_specs=(P(), (spec, spec))))(z1, z2)
  want_v, (w1, w2) = jax.value_and_grad(
      functools.partial(losses.nt_xent, temperature=0.1), argnums=(0, 1))(z1, z2)
  np.testing.assert_allclose(float(v), float(want_v), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(g1), np.asarray(w1), atol=1e-5)
  np.testing.assert_allclose(np.asarray(g2), np.asarray(w2), atol=1e-5)


def test_bfloat16_inputs_compute_in_float32():
  z1, z2 = _data()
  got = losses.nt_xent(jnp.asarray(z1, jnp.bfloat16), jnp.asarray(z2, jnp.bfloat16),
                       temperature=0.2)
  assert got.dtype == jnp.float32
  z1b = np.asarray(jnp.asarray(z1, jnp.bfloat16).astype(jnp.float32))
  z2b = np.asarray(jnp.asarray(z2, jnp.bfloat16).astype(jnp.float32))
  np.testing.assert_allclose(float(got), np_nt_xent(z1b, z2b, 0.2), rtol=1e-5)


def test_float64_matches_numpy_to_1e10(x64):
  z1, z2 = _data(dtype=np.float64)
  got = losses.nt_xent(z1, z2, temperature=0.1)
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(float(got), np_nt_xent(z1, z2, 0.1), rtol=0, atol=1e-10)


def test_rejects_mismatched_views():
  with pytest.raises(ValueError):
    losses.nt_xent(np.ones((4, 3)), np.ones((5, 3)))
