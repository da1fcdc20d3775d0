"""Train state, device mesh and the one jitted train step shared by every method.

Data parallelism uses `jax.jit` with explicit shardings: the batch is split along the mesh's
data axis and the state is replicated. Every cross-example reduction in a method (BatchNorm
statistics, contrastive negatives, Sinkhorn sums) is therefore computed over the *global*
batch by the compiler, so a step on 8 devices equals a step on one device holding the same
global batch; the tests check it. The same step runs across hosts: each process passes its
local slice and `jax.make_array_from_process_local_data` assembles the global array.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jax_ssl.methods._base import Method

DATA_AXIS = "data"


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  state: Any  # the method's non-trainable state: BN statistics, EMA targets, queues...
  skipped: jax.Array  # steps whose update was refused because loss or gradients were not finite


def make_mesh(devices=None) -> Mesh:
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices.reshape(-1), (DATA_AXIS,))


def check_batch_divisible(global_batch: int, mesh: Mesh, what: str = "batch size"):
  n = mesh.devices.size
  if global_batch % n:
    raise ValueError(f"{what} {global_batch} is not divisible by the {n} devices; "
                     f"use a multiple of {n}")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_batch(batch: dict, mesh: Mesh) -> dict:
  """This process's slice of a global batch (numpy) -> globally sharded jax arrays."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def init_train_state(method: Method, tx: optax.GradientTransformation, rng: jax.Array, batch: dict,
                     mesh: Mesh) -> TrainState:
  """Initializes parameters from a (global, sharded or not) example batch, replicated on `mesh`."""

  def init(rng, batch):
    params, state = method.init(rng, batch)
    params = method.project_params(params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      state=state, skipped=jnp.zeros((), jnp.int32))

  return jax.jit(init, out_shardings=replicated(mesh))(rng, batch)


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def make_train_step(method: Method, tx: optax.GradientTransformation, mesh: Mesh, schedule=None):
  """Returns the jitted `(state, batch, rng) -> (state, metrics)`; the state buffers are donated.

  The per-step key is `fold_in(rng, step)`, so randomness depends only on (seed, step). A step
  whose loss or gradients are not finite leaves parameters, optimizer and method state
  unchanged and increments `skipped` (metric "nonfinite" = 1).
  """

  def step_fn(ts: TrainState, batch: dict, rng: jax.Array):
    step_rng = jax.random.fold_in(rng, ts.step)
    grad_fn = jax.value_and_grad(method.loss, has_aux=True)
    (loss, (new_state, metrics)), grads = grad_fn(ts.params, ts.state, batch, step_rng, ts.step)
    grads = method.process_grads(grads, ts.step)
    updates, new_opt = tx.update(grads, ts.opt_state, ts.params)
    updates = method.process_updates(updates, ts.step)
    new_params = method.project_params(optax.apply_updates(ts.params, updates))
    new_state = method.update_state(new_params, new_state, ts.step)
    ok = jnp.isfinite(loss) & _all_finite(grads)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
    metrics = dict(metrics)
    metrics["loss"] = loss
    metrics["grad_norm"] = optax.global_norm(grads)
    metrics["nonfinite"] = 1 - ok.astype(jnp.int32)
    if schedule is not None:
      metrics["lr"] = schedule(ts.step)
    new_ts = TrainState(step=ts.step + 1, params=keep(new_params, ts.params),
                        opt_state=keep(new_opt, ts.opt_state), state=keep(new_state, ts.state),
                        skipped=ts.skipped + (1 - ok.astype(jnp.int32)))
    return new_ts, metrics

  rep, data = replicated(mesh), batch_sharding(mesh)
  return jax.jit(step_fn, in_shardings=(rep, data, rep), out_shardings=(rep, rep), donate_argnums=0)


def make_embed_fn(method: Method, mesh: Mesh, blocks: bool = False):
  """Jitted `(params, state, images) -> features` with the batch sharded over `mesh`."""
  fn = method.embed_blocks if blocks else method.embed
  rep, data = replicated(mesh), batch_sharding(mesh)
  return jax.jit(fn, in_shardings=(rep, rep, data), out_shardings=data)
