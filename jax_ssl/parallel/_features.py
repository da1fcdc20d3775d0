"""Features of every example of a split, sharded over all devices and processes.

Two forms:

* `extract_features`: host numpy arrays in index order (evaluation: kNN and linear probes of
  small to medium splits, where the features fit on one host).
* `extract_features_sharded`: the features stay on the devices as global arrays laid out in
  chunks, `[C, B, F]` with the batch axis `B` sharded over the mesh. Dataset-level passes
  (k-means, Sinkhorn pseudo-labels, nearest neighbours) scan over the `C` chunks and never
  form an `N x K` matrix: on ImageNet (N = 1.28M) a chunk of B rows against K = 10,000
  centroids is `B x K`, per device `B / devices x K`.
"""

from __future__ import annotations

from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl import data
from jax_ssl.parallel._mesh import batch_sharding, check_batch_divisible, make_mesh, replicated, shard_batch, to_host

EmbedFn = Callable  # (params, state, images) -> features [B, F] (or a dict of them)


def make_embed_fn(fn: EmbedFn, mesh) -> Callable:
  """Jitted `fn(params, state, images)` with params/state replicated and the batch sharded."""
  rep, dat = replicated(mesh), batch_sharding(mesh)
  return jax.jit(fn, in_shardings=(rep, rep, dat), out_shardings=dat)


def _batches(source, preprocess, *, batch_size: int, mesh):
  check_batch_divisible(batch_size, mesh, "evaluation batch size")
  ds, _ = data.eval_dataset(source, preprocess, batch_size=batch_size, process_index=jax.process_index(),
                            process_count=jax.process_count())
  for batch in data.as_numpy_iterator(ds, source):
    yield shard_batch(batch, mesh)


def extract_features(embed: Callable, preprocess: Callable, params, state, source, *, batch_size: int = 256,
                     mesh=None):
  """Features of every example of `source`, in index order, on the host of every process.

  Args:
    embed: a jitted `(params, state, images) -> [B, F]` (or a dict of such), e.g. from
      `make_embed_fn`.
    preprocess: TensorFlow `uint8 [H, W, 3] -> float32` network input.

  Returns (features [N, F] float32 or a dict name -> [N, F_b], labels int32 [N]).
  """
  mesh = mesh or make_mesh()
  feats, labels, masks = [], [], []
  for g in _batches(source, preprocess, batch_size=batch_size, mesh=mesh):
    feats.append(jax.tree.map(to_host, embed(params, state, g["image"])))
    labels.append(to_host(g["label"]))
    masks.append(to_host(g["mask"]))
  mask = np.concatenate(masks)
  labels = np.concatenate(labels)[mask]
  out = jax.tree.map(lambda *xs: np.concatenate(xs)[mask].astype(np.float32), *feats)
  return out, labels


@flax.struct.dataclass
class ShardedFeatures:
  """Dataset features as device-resident chunks (global arrays, `B` sharded over the mesh).

  Attributes:
    features: float32 [C, B, F]: chunk c holds the examples `c * B ... c * B + B - 1`.
    index: int32 [C, B]: each row's example index (the last chunk's padding repeats N - 1).
    valid: bool [C, B]: False on the padding of the last chunk.
    labels: int32 [C, B]: the source's labels (-1 where unknown); for monitors only.
  """

  features: jax.Array
  index: jax.Array
  valid: jax.Array
  labels: jax.Array


def extract_features_sharded(embed: Callable, preprocess: Callable, params, state, source, *,
                             batch_size: int = 256, mesh=None) -> ShardedFeatures:
  """Features of every example of `source` as `ShardedFeatures`; nothing is gathered to a host.

  Every process reads its block of each chunk (as in training) and the devices keep their
  rows: memory per device is `N * F / devices` floats.
  """
  mesh = mesh or make_mesh()
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, mesh.axis_names[0]))
  chunks = {"features": [], "index": [], "valid": [], "labels": []}
  for g in _batches(source, preprocess, batch_size=batch_size, mesh=mesh):
    chunks["features"].append(embed(params, state, g["image"]).astype(jnp.float32))
    chunks["index"].append(g["index"])
    chunks["valid"].append(g["mask"])
    chunks["labels"].append(g["label"])
  stack = jax.jit(lambda *xs: jnp.stack(xs), out_shardings=sharding)
  return ShardedFeatures(**{k: stack(*v) for k, v in chunks.items()})
