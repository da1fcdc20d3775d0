"""The one train step: multi-device equivalence, divergence guard, optimizer masks, checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.helpers import batches as _batches, toy_source
from jax_ssl import train
from jax_ssl.methods import SimCLR
from jax_ssl.models import ConvNet


def tiny_simclr(**kw):
  # 8 devices == 1 for every method is the contract suite's (tests/test_contract.py).
  return SimCLR(backbone=ConvNet(widths=(8, 8)), image_size=16, proj_hidden_dims=(16,), proj_dim=8,
                temperature=0.5, **kw)


def test_batch_not_divisible_by_devices_is_a_clear_error():
  with pytest.raises(ValueError, match="not divisible by the 8 devices"):
    train.check_batch_divisible(12, train.make_mesh(), "global batch size")


def test_nonfinite_step_is_not_applied():
  method, src = tiny_simclr(), toy_source()
  tx = optax.sgd(0.1)
  batch = _batches(method, src, 16, 1)[0]
  mesh = train.make_mesh()
  state = train.init_train_state(method, tx, jax.random.key(0), train.shard_batch(batch, mesh), mesh)
  before = jax.device_get(state.params)
  step = train.make_train_step(method, tx, mesh)
  bad = dict(batch, view1=np.full_like(batch["view1"], np.nan))
  state, m = step(state, train.shard_batch(bad, mesh), jax.random.key(1))
  assert int(m["nonfinite"]) == 1 and int(state.skipped) == 1 and int(state.step) == 1
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(jax.device_get(state.params))):
    np.testing.assert_array_equal(a, b)
  state, m = step(state, train.shard_batch(batch, mesh), jax.random.key(1))
  assert int(m["nonfinite"]) == 0 and int(state.skipped) == 1


def test_weight_decay_mask_skips_biases_and_norms():
  params = {"conv": {"kernel": jnp.ones((3, 3, 2, 2))}, "bn": {"scale": jnp.ones(2), "bias": jnp.ones(2)}}
  mask = train.decay_mask(params)
  assert mask == {"conv": {"kernel": True}, "bn": {"scale": False, "bias": False}}
  for name in ("sgd", "adamw", "lars"):
    tx = train.make_optimizer(name, 0.1, weight_decay=0.5)
    zero = jax.tree.map(jnp.zeros_like, params)
    upd, _ = tx.update(zero, tx.init(params), params)
    assert float(jnp.abs(upd["bn"]["scale"]).max()) == 0.0, name
    assert float(jnp.abs(upd["conv"]["kernel"]).max()) > 0.0, name


def test_warmup_cosine_schedule():
  s = train.warmup_cosine(base_lr=1.0, total_steps=100, warmup_steps=10)
  assert float(s(0)) == 0.0 and abs(float(s(10)) - 1.0) < 1e-6
  assert abs(float(s(55)) - 0.5) < 1e-2 and float(s(100)) < 1e-6
  assert train.scaled_lr(0.3, 512, "linear") == pytest.approx(0.6)


def test_checkpoint_round_trip_and_signature_check(tmp_path):
  method, src = tiny_simclr(), toy_source()
  tx = optax.adamw(1e-3)
  batch = _batches(method, src, 16, 1)[0]
  mesh = train.make_mesh()
  state = train.init_train_state(method, tx, jax.random.key(0), train.shard_batch(batch, mesh), mesh)
  state, _ = train.make_train_step(method, tx, mesh)(state, train.shard_batch(batch, mesh), jax.random.key(1))
  ckpt = train.Checkpointer(str(tmp_path), save_every=1, keep=2)
  assert ckpt.save(1, state, {"signature": method.signature()})
  ckpt.wait()
  fresh = train.init_train_state(method, tx, jax.random.key(5), train.shard_batch(batch, mesh), mesh)
  restored, meta, step = ckpt.restore(fresh, method.signature())
  assert step == 1 and meta["signature"] == method.signature()
  for a, b in zip(jax.tree.leaves(jax.device_get(state)), jax.tree.leaves(jax.device_get(restored))):
    np.testing.assert_array_equal(a, b)
  other = SimCLR(backbone=ConvNet(widths=(8, 16)), image_size=16, proj_hidden_dims=(16,), proj_dim=8)
  with pytest.raises(train.CheckpointError, match="different model.*widths"):
    ckpt.restore(fresh, other.signature())


def test_checkpoint_partial_restore_fallback_and_nonfinite_refusal(tmp_path):
  import glob
  import os

  method, src = tiny_simclr(), toy_source()
  tx = optax.adamw(1e-3)
  batch = _batches(method, src, 16, 1)[0]
  mesh = train.make_mesh()
  state = train.init_train_state(method, tx, jax.random.key(0), train.shard_batch(batch, mesh), mesh)
  step_fn = train.make_train_step(method, tx, mesh)
  ckpt = train.Checkpointer(str(tmp_path), save_every=1, keep=5, async_save=False)
  saved = {}
  for s in (1, 2):
    state, _ = step_fn(state, train.shard_batch(batch, mesh), jax.random.key(s))
    assert ckpt.save(s, state, {"signature": method.signature()})
    saved[s] = jax.device_get(state)
  # A state with NaN parameters is refused: the good checkpoints stay the newest.
  bad = state.replace(params=jax.tree.map(lambda x: x * jnp.nan, state.params))
  assert not ckpt.save(3, bad, {"signature": method.signature()}, force=True)
  assert ckpt.all_steps() == [1, 2]

  # Partial restore: only params and the method state, no optimizer needed.
  params, mstate = method.init(jax.random.key(9), batch)
  restored, _, step = ckpt.restore({"params": params, "state": mstate}, method.signature(), partial=True)
  assert step == 2 and set(restored) == {"params", "state"}
  for a, b in zip(jax.tree.leaves(saved[2].params), jax.tree.leaves(restored["params"])):
    np.testing.assert_array_equal(a, b)

  # Corrupt the newest step's array data: restore falls back to step 1 with a warning.
  for f in glob.glob(os.path.join(str(tmp_path), "2", "state", "**", "*"), recursive=True):
    if os.path.isfile(f) and not f.endswith(("_METADATA", "_CHECKPOINT_METADATA", ".json")):
      with open(f, "wb") as fh:
        fh.write(b"garbage")
  fresh = train.init_train_state(method, tx, jax.random.key(5), train.shard_batch(batch, mesh), mesh)
  restored, _, step = ckpt.restore(fresh, method.signature())
  assert step == 1
  for a, b in zip(jax.tree.leaves(saved[1].params), jax.tree.leaves(jax.device_get(restored.params))):
    np.testing.assert_array_equal(a, b)
