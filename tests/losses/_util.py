"""Helpers of the loss tests: one device holding the global batch vs 8 simulated devices."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

AXIS = "data"
NDEV = 8
MODES = ("shard_map", "shard_map_no_vma", "pmap")

tree_map = jax.tree_util.tree_map


def mesh():
  assert jax.device_count() >= NDEV, "conftest.py must simulate 8 CPU devices"
  return Mesh(np.array(jax.devices()[:NDEV]), (AXIS,))


def run_sharded(loss_fn, args, sharded, argnums, *, mode, axis=AXIS):
  """Per-device values and gradients of ``loss_fn(*args, axis_name=AXIS)`` on 8 devices.

  ``args`` are global arrays (or pytrees of them); ``sharded[i]`` says whether argument i is
  split along its leading axis (else replicated). Returns ``(values [8], grads)`` where
  ``grads[j]`` (for ``argnums[j]``) is the per-device gradients concatenated back into the
  global layout for a sharded argument, and their sum over devices for a replicated one
  under pmap / check_vma=False (each device holds its share); under shard_map with
  check_vma=True a replicated argument's gradient comes out already summed.
  """
  argnums = tuple(argnums)
  summed_inside = mode == "shard_map"

  def body(*a):
    v, g = jax.value_and_grad(lambda *b: loss_fn(*b, axis_name=AXIS), argnums=argnums)(*a)
    g = list(g)
    for j, i in enumerate(argnums):
      if not sharded[i] and not summed_inside:
        g[j] = tree_map(lambda x: x[None], g[j])
    return v[None], tuple(g)

  if mode in ("shard_map", "shard_map_no_vma"):
    in_specs = tuple(P(AXIS) if s else P() for s in sharded)
    g_specs = tuple(P(AXIS) if (sharded[i] or not summed_inside) else P() for i in argnums)
    f = jax.shard_map(body, mesh=mesh(), in_specs=in_specs, out_specs=(P(AXIS), g_specs),
                      check_vma=mode == "shard_map")
    values, grads = jax.jit(f)(*args)
    grads = list(grads)
    for j, i in enumerate(argnums):
      if not sharded[i] and not summed_inside:
        grads[j] = tree_map(lambda x: jnp.sum(x, axis=0), grads[j])
    return np.asarray(values), grads
  if mode == "pmap":
    def split(x):
      return x.reshape((NDEV, x.shape[0] // NDEV) + x.shape[1:])
    pargs = tuple(tree_map(split, a) if s else a for a, s in zip(args, sharded))
    in_axes = tuple(0 if s else None for s in sharded)
    values, grads = jax.pmap(body, axis_name=AXIS, in_axes=in_axes)(*pargs)
    grads = list(grads)
    for j, i in enumerate(argnums):
      if sharded[i]:
        grads[j] = tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), grads[j])
      else:
        grads[j] = tree_map(lambda x: jnp.sum(x[:, 0], axis=0), grads[j])
    return np.asarray(values).reshape(-1), grads
  raise ValueError(mode)


def assert_sharded_matches_single(loss_fn, args, sharded, argnums, *, mode, tol=1e-5):
  """Value and gradients on 8 devices equal those of one device holding the global batch."""
  single_v, single_g = jax.jit(jax.value_and_grad(
      lambda *a: loss_fn(*a, axis_name=None), argnums=tuple(argnums)))(*args)
  values, grads = run_sharded(loss_fn, args, sharded, argnums, mode=mode)
  assert values.shape == (NDEV,)
  np.testing.assert_allclose(values, np.full(NDEV, float(single_v)), rtol=tol, atol=tol)
  leaves_single = jax.tree_util.tree_leaves(single_g)
  leaves_sharded = jax.tree_util.tree_leaves(grads)
  assert len(leaves_single) == len(leaves_sharded)
  assert any(np.abs(np.asarray(g)).max() > 1e-4 for g in leaves_single), "vacuous: zero grads"
  for gs, gm in zip(leaves_single, leaves_sharded):
    assert gs.shape == gm.shape
    np.testing.assert_allclose(np.asarray(gm), np.asarray(gs), rtol=tol, atol=tol)
  return single_v, single_g


def assert_finite_grads(loss_fn, args, argnums):
  grads = jax.grad(loss_fn, argnums=tuple(argnums))(*args)
  leaves = jax.tree_util.tree_leaves(grads)
  assert leaves
  for g in leaves:
    assert np.all(np.isfinite(np.asarray(g)))
  return grads
