"""The device mesh, batch/replicated shardings and cross-process agreement.

Data parallelism uses `jax.jit` with explicit shardings: the batch is split along the mesh's
data axis and the state is replicated. Each process passes its local slice of a global batch
and `jax.make_array_from_process_local_data` assembles the global array.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

# The one mesh axis of data parallelism. Library code passes it down; nothing else spells it.
DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every process) named `DATA_AXIS`."""
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices.reshape(-1), (DATA_AXIS,))


def check_batch_divisible(global_batch: int, mesh: Mesh, what: str = "batch size"):
  n = mesh.devices.size
  if global_batch % n:
    raise ValueError(f"{what} {global_batch} is not divisible by the {n} devices; "
                     f"use a multiple of {n}")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_batch(batch: dict, mesh: Mesh) -> dict:
  """This process's slice of a global batch (numpy) -> globally sharded jax arrays."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def to_host(x) -> np.ndarray:
  """A (possibly multi-process sharded) global array as one host numpy array on every process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is True on any of them (a collective: all must call it)."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top

  return bool(np.any(multihost_utils.process_allgather(np.asarray([int(bool(flag))], np.int32))))
