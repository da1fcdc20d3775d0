"""Spherical k-means as DeepCluster-v2 runs it (`main_deepclusterv2.py` of the SwAV code)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _normalize(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@functools.partial(jax.jit, static_argnames=("num_iters", "chunk"))
def _run(x, valid, centroids, *, num_iters: int, chunk: int):
  n, d = x.shape
  k = centroids.shape[0]
  xc = x.reshape(n // chunk, chunk, d)
  vc = valid.reshape(n // chunk, chunk)

  def assign(c):
    def body(carry, xs):
      xb, vb = xs
      lab = jnp.argmax(xb @ c.T, axis=-1)  # ties: the lowest index
      onehot = jax.nn.one_hot(lab, k, dtype=xb.dtype) * vb[:, None]
      sums, counts = carry
      return (sums + onehot.T @ xb, counts + jnp.sum(onehot, axis=0)), lab

    (sums, counts), labels = jax.lax.scan(body, (jnp.zeros((k, d), x.dtype), jnp.zeros((k,), x.dtype)), (xc, vc))
    return sums, counts, labels.reshape(n)

  def step(c, _):
    sums, counts, _ = assign(c)
    # The normalized mean of a cluster's members is its normalized sum; an empty cluster keeps
    # its centroid.
    return jnp.where(counts[:, None] > 0, _normalize(sums), c), None

  centroids, _ = jax.lax.scan(step, centroids, None, length=num_iters)
  _, _, labels = assign(centroids)
  return centroids, labels


def spherical_kmeans(x, centroids, *, num_iters: int = 10, chunk: int = 4096, valid=None):
  """DeepCluster-v2's k-means on the sphere.

  Convention: `x` [N, D] and `centroids` [K, D] are L2-normalized (by the caller: the memory
  bank of projections and the initial centroids, e.g. K random rows of it). `num_iters` rounds
  of: assign each row to the centroid of largest dot product (ties to the lowest index); every
  non-empty cluster's centroid becomes the normalized mean of its members, an empty one keeps
  its previous centroid. Then one more assignment, so the returned assignments are the argmax
  under the returned centroids (as `main_deepclusterv2.py`, whose last iteration assigns
  without updating).

  `valid` (optional bool [N]): rows marked False take no part in the centroids (a memory bank
  not yet full); they still get an assignment.

  Rows are processed `chunk` at a time (an N x K score matrix never exists: at N = 1.28M,
  K = 3,000 a chunk's scores are 4096 x 3000).

  Returns (centroids float32 [K, D], assignments int32 [N]) as JAX arrays; traceable, so a
  jitted dataset pass calls it on device-resident arrays (DeepCluster-v2's memory bank).

  >>> import numpy as np
  >>> x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
  >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
  >>> c, a = spherical_kmeans(x, x[[0, 2]], num_iters=3)
  >>> a.tolist()
  [0, 0, 1, 1]
  """
  x = jnp.asarray(x, jnp.float32)
  centroids = jnp.asarray(centroids, jnp.float32)
  if x.ndim != 2 or centroids.ndim != 2 or x.shape[1] != centroids.shape[1]:
    raise ValueError(f"spherical_kmeans expects x [N, D] and centroids [K, D]; got {x.shape}, {centroids.shape}")
  n = x.shape[0]
  chunk = max(1, min(int(chunk), n))
  pad = (-n) % chunk
  mask = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)
  if mask.shape != (n,):
    raise ValueError(f"spherical_kmeans: valid must be [N] = [{n}], got {mask.shape}")
  valid = jnp.pad(mask, (0, pad))
  xp = jnp.pad(x, ((0, pad), (0, 0)))
  c, labels = _run(xp, valid, centroids, num_iters=int(num_iters), chunk=chunk)
  return c, labels[:n].astype(jnp.int32)
