"""Weighted k-nearest-neighbour classification on frozen features (Wu et al. 2018; DINO).

Protocol (InstDisc / DINO `eval_knn.py`): features are L2-normalized; similarity is the cosine;
each of the k nearest training examples votes for its class with weight exp(sim / T), T = 0.07;
the predicted class has the largest summed weight. Top-1 accuracy in percent.

With a `mesh` of several devices the memory bank is sharded over them (rows split along the
mesh axis, e.g. ImageNet's 1.28M x 2048 float32 bank, 10.5 GB, is 1.3 GB per device on 8):
each device takes the top-k of its rows, the k candidates of every device are gathered, and
the global top-k of those is the same as on one device (ties aside).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _sim(q, bank):
  """Cosine similarities [C, N] of normalized float32 queries with the (normalized) bank, in the
  bank's dtype with float32 accumulation (bfloat16 banks: half the memory, f32 scores)."""
  return jnp.matmul(_normalize(q).astype(bank.dtype), bank.T, preferred_element_type=jnp.float32)


def knn_predict(train_features, train_labels, test_features, *, k: int, num_classes: int,
                temperature: float = 0.07, chunk: int = 1024, mesh=None, bank_dtype=None) -> np.ndarray:
  """Class-vote scores [N_test, num_classes] of the weighted kNN classifier; with a `mesh` of
  several devices the bank is sharded over them; `bank_dtype` ("bfloat16" for bf16 models;
  default float32) is the dtype the normalized bank is stored and multiplied in."""
  bank_dtype = jnp.dtype(bank_dtype or jnp.float32)
  if mesh is not None and mesh.size > 1:
    return _knn_predict_sharded(train_features, train_labels, test_features, k=k, num_classes=num_classes,
                                temperature=temperature, chunk=chunk, mesh=mesh, bank_dtype=bank_dtype)
  k = min(k, train_features.shape[0])
  bank = _normalize(jnp.asarray(train_features, jnp.float32)).astype(bank_dtype)
  bank_labels = jnp.asarray(train_labels, jnp.int32)

  @jax.jit
  def scores(q):
    sim = _sim(q, bank)
    top_sim, top_idx = jax.lax.top_k(sim, k)
    weights = jnp.exp(top_sim / temperature)
    onehot = jax.nn.one_hot(bank_labels[top_idx], num_classes)
    return jnp.einsum("nk,nkc->nc", weights, onehot)

  test_features = np.asarray(test_features, np.float32)
  out = [np.asarray(scores(jnp.asarray(test_features[i:i + chunk]))) for i in range(0, len(test_features), chunk)]
  return np.concatenate(out)


def _knn_predict_sharded(train_features, train_labels, test_features, *, k, num_classes, temperature, chunk,
                         mesh, bank_dtype) -> np.ndarray:
  axis = mesh.axis_names[0]
  n, d = train_features.shape[0], mesh.size
  k = min(k, n)
  pad = (-n) % d
  bank = np.asarray(_normalize(jnp.asarray(train_features, jnp.float32)).astype(bank_dtype))
  bank = jax.device_put(np.pad(bank, ((0, pad), (0, 0))), NamedSharding(mesh, P(axis, None)))
  labels = jax.device_put(np.pad(np.asarray(train_labels, np.int32), (0, pad), constant_values=-1),
                          NamedSharding(mesh, P(axis)))
  local_k = min(k, (n + pad) // d)

  def local(q, b, lab):  # q [C, F] on every device; b [N / d, F], lab [N / d] this device's rows
    sim = jnp.where(lab[None, :] >= 0, _sim(q, b), -jnp.inf)  # padding rows never win
    top_sim, top_idx = jax.lax.top_k(sim, local_k)
    top_lab = lab[top_idx]
    top_sim = jax.lax.all_gather(top_sim, axis, axis=1, tiled=True)  # [C, d * local_k], device-major
    top_lab = jax.lax.all_gather(top_lab, axis, axis=1, tiled=True)
    best, pos = jax.lax.top_k(top_sim, k)
    weights = jnp.where(jnp.isfinite(best), jnp.exp(best / temperature), 0.0)
    onehot = jax.nn.one_hot(jnp.take_along_axis(top_lab, pos, axis=1), num_classes)
    return jnp.einsum("nk,nkc->nc", weights, onehot)

  fn = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P(axis, None), P(axis)), out_specs=P(),
                             check_vma=False))
  test_features = np.asarray(test_features, np.float32)
  out = [np.asarray(fn(jnp.asarray(test_features[i:i + chunk]), bank, labels)) for i in range(0, len(test_features), chunk)]
  return np.concatenate(out)


def knn_accuracy(train_features, train_labels, test_features, test_labels, *, ks: Sequence[int] = (20, 200),
                 num_classes: int, temperature: float = 0.07, mesh=None, bank_dtype=None) -> dict:
  """Top-1 accuracy (%) of the weighted kNN classifier for each k: {"knn_top1_k20": ..., ...}
  (the bank sharded over `mesh`'s devices when it has several)."""
  out = {}
  for k in ks:
    pred = knn_predict(train_features, train_labels, test_features, k=k, num_classes=num_classes,
                       temperature=temperature, mesh=mesh, bank_dtype=bank_dtype).argmax(-1)
    out[f"knn_top1_k{k}"] = float(100.0 * np.mean(pred == np.asarray(test_labels)))
  return out
