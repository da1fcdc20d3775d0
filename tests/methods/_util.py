"""Shared helpers of the method tests: a few real train steps on 1 or 8 devices."""

import jax
import numpy as np
import optax

from tests.helpers import batches, run_steps  # noqa: F401  (re-exported for the method tests)


def assert_eight_devices_equal_one(method, src, global_batch=16):
  tx = optax.sgd(0.05, momentum=0.9)
  bs = batches(method, src, global_batch, 2)
  s8, m8 = run_steps(method, tx, bs, jax.devices())
  p0, s1, m1 = run_steps(method, tx, bs, jax.devices()[:1], with_initial=True)
  assert jax.device_count() == 8
  for a, b in zip(jax.tree.leaves(s8.params), jax.tree.leaves(s1.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(s8.state), jax.tree.leaves(s1.state)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  for k in m1[-1]:
    np.testing.assert_allclose(m8[-1][k], m1[-1][k], rtol=1e-5, atol=1e-6)
  # The steps changed the parameters, so the comparison is not vacuous.
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(s1.params)))


def assert_two_steps_smoke(method, src, metric, global_batch=8):
  """Two steps: finite loss, the pretext metric in [0, 1], parameters change, state updated."""
  tx = optax.adamw(1e-3)
  bs = batches(method, src, global_batch, 2)
  p0, s2, ms = run_steps(method, tx, bs, jax.devices()[:1], with_initial=True)
  assert int(s2.step) == 2 and int(s2.skipped) == 0
  for m in ms:
    assert np.isfinite(m["loss"]) and 0.0 <= float(m[metric]) <= 1.0
  changed = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(s2.params))]
  assert all(changed), f"{changed.count(False)} parameter arrays did not move"
  return s2, ms
