"""Small shared fixtures for the method and trainer tests (imported as `helpers`)."""

import jax
import numpy as np

from jax_ssl import data, train
from jax_ssl.data import ArraySource
from jax_ssl.methods import with_dataset_extras


_ONCE = {}


def once(key, make):
  """`make()` computed once per test process (xdist worker) and kept: for expensive shared
  results. A module-scoped fixture is not enough under xdist, which may interleave a module's
  tests with other modules' on one worker, tearing the fixture down and setting it up again."""
  if key not in _ONCE:
    _ONCE[key] = make()
  return _ONCE[key]


def toy_source(n=64, size=16, num_classes=4, seed=0):
  """Random uint8 images whose colour depends on the class (so features can learn something)."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n, dtype=np.int32) % num_classes
  base = rng.integers(0, 256, (num_classes, 1, 1, 3))
  noise = rng.integers(-40, 40, (n, size, size, 3))
  images = np.clip(base[labels] + noise, 0, 255).astype(np.uint8)
  return ArraySource(images, labels, [f"c{i}" for i in range(num_classes)], "toy")


def batches(method, src, global_batch, k, seed=0):
  """The first `k` global training batches of `method`'s views of `src` (numpy dicts); a method
  drawing partners (SCAN) draws them from its placeholder candidates."""
  if method.partner_key:
    src = with_dataset_extras(method, src, None)
  ds = data.train_dataset(src, method.make_views, global_batch=global_batch, seed=seed,
                          partner_key=method.partner_key)
  return [b for _, b in zip(range(k), ds.as_numpy_iterator())]


def run_steps(method, tx, bs, devices=None, *, with_initial=False, start=None):
  """Initializes from the first batch on a mesh of `devices` (or starts from `start`, a host
  `TrainState`, replicated on it) and runs one jitted step per batch.

  Returns (host state, metrics), or (initial params, host state, metrics) with `with_initial`.
  """
  mesh = train.make_mesh(devices)
  if start is None:
    state = train.init_train_state(method, tx, jax.random.key(0), train.shard_batch(bs[0], mesh), mesh)
  else:
    state = jax.device_put(start, train.replicated(mesh))
  initial = jax.device_get(state.params) if with_initial else None  # before the donating step
  step = train.make_train_step(method, tx, mesh)
  metrics = []
  for b in bs:
    state, m = step(state, train.shard_batch(b, mesh), jax.random.key(1))
    metrics.append(jax.device_get(m))
  if with_initial:
    return initial, jax.device_get(state), metrics
  return jax.device_get(state), metrics


def assert_trees_close(a, b, rtol=1e-5, atol=1e-5):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
