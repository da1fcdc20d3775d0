"""Pretext-task classification: the loss, and the label conventions of rotation and context."""

from __future__ import annotations

from typing import Tuple

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common

#: Context prediction (Doersch et al., ICCV 2015, Fig. 2): label -> ``(dy, dx)``, the position
#: of the second patch relative to the first in 3x3 raster order with the centre skipped.
#: ``dy`` counts rows downwards and ``dx`` columns rightwards.
CONTEXT_OFFSETS: Tuple[Tuple[int, int], ...] = (
    (-1, -1), (-1, 0), (-1, 1),   # 0 up-left, 1 up, 2 up-right
    (0, -1), (0, 1),              # 3 left, 4 right
    (1, -1), (1, 0), (1, 1),      # 5 down-left, 6 down, 7 down-right
)

#: Rotation prediction (Gidaris et al., ICLR 2018): label ``k`` is ``k * 90`` degrees
#: counter-clockwise.
ROTATION_DEGREES: Tuple[int, ...] = (0, 90, 180, 270)


def classification_loss(logits: jax.Array, labels: jax.Array, *, label_smoothing: float = 0.0,
                        axis_name=None) -> jax.Array:
  """Softmax cross-entropy with integer labels, averaged over the (global) batch.

  The loss of pretext classification tasks (rotation prediction, Gidaris et al., ICLR 2018,
  Eq. (2)-(3); context prediction, Doersch et al., ICCV 2015) and of linear probes.
  Convention: targets are ``(1 - label_smoothing) * one_hot + label_smoothing / K`` (as
  ``optax.smooth_labels``); the reduction is the mean over examples.

  Args:
    logits: ``[B, K]`` unnormalised class scores (this device's shard).
    labels: ``[B]`` integer labels in ``[0, K)``.
    label_smoothing: mass spread uniformly over the K classes.
    axis_name: mapped axis the batch is split over (``shard_map``/``pmap``): the result is
      then the mean over the global batch on every device.

  Returns:
    Scalar loss, float32 (float64 for float64 logits).

  >>> import jax.numpy as jnp
  >>> logits = jnp.array([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
  >>> print(f"{classification_loss(logits, jnp.array([0, 3])):.4f}")
  0.8635
  """
  if logits.ndim != 2 or labels.shape != logits.shape[:1]:
    raise ValueError(f"expected logits [B, K] and labels [B], got {logits.shape}, {labels.shape}")
  logits = logits.astype(_common.compute_dtype(logits))
  k = logits.shape[-1]
  targets = jax.nn.one_hot(labels, k, dtype=logits.dtype)
  targets = (1.0 - label_smoothing) * targets + label_smoothing / k
  ce = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)
  return _common.global_mean(jnp.mean(ce), axis_name)


def accuracy(logits: jax.Array, labels: jax.Array, *, axis_name=None) -> jax.Array:
  """Top-1 accuracy ``mean(argmax(logits) == labels)`` over the (global) batch; no gradient.

  Args:
    logits: ``[B, K]``; labels: ``[B]`` integers; axis_name: as in ``classification_loss``.

  >>> import jax.numpy as jnp
  >>> print(accuracy(jnp.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]]), jnp.array([0, 1, 1])))
  0.6666667
  """
  correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
  return jax.lax.stop_gradient(_common.global_mean(jnp.mean(correct), axis_name))


def rotate_batch(images: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """Every image at 0, 90, 180 and 270 degrees counter-clockwise, image-major, with labels.

  Gidaris et al., "Unsupervised Representation Learning by Predicting Image Rotations",
  ICLR 2018. Convention: counter-clockwise as displayed (row 0 at the top), i.e.
  ``np.rot90(image, k)``; label ``k`` in 0..3 is ``k * 90`` degrees; rows ``4i .. 4i+3`` of
  the output are image ``i`` rotated by 0, 90, 180, 270 degrees.

  Args:
    images: ``[B, H, W, C]`` with ``H == W``.

  Returns:
    ``(rotated [4B, H, W, C], labels [4B] int32)``.

  >>> import jax.numpy as jnp
  >>> x, y = rotate_batch(jnp.array([[1, 2], [3, 4]]).reshape(1, 2, 2, 1))
  >>> print(x[1, ..., 0], y)   # 90 degrees counter-clockwise: the top-right 2 goes top-left
  [[2 4]
   [1 3]] [0 1 2 3]
  """
  if images.ndim != 4 or images.shape[1] != images.shape[2]:
    raise ValueError(f"rotate_batch expects square images [B, H, W, C], got {images.shape}")
  b = images.shape[0]
  rotated = jnp.stack([jnp.rot90(images, k, axes=(1, 2)) for k in range(4)], axis=1)
  labels = jnp.tile(jnp.arange(4, dtype=jnp.int32), b)
  return rotated.reshape((4 * b,) + images.shape[1:]), labels


def context_label(dy, dx):
  """Context-prediction label of a second patch at offset ``(dy, dx)`` from the first.

  Inverse of :data:`CONTEXT_OFFSETS`: 3x3 raster order with the centre skipped,
  ``0 up-left, 1 up, 2 up-right, 3 left, 4 right, 5 down-left, 6 down, 7 down-right``;
  ``dy`` counts rows downwards, ``dx`` columns rightwards, each in ``{-1, 0, 1}``, not both 0.
  Reversing the pair (first relative to second) maps label ``l`` to ``7 - l``.

  Args:
    dy, dx: Python ints (validated) or integer arrays of equal shape (not validated).

  Returns:
    An int for int inputs, else an int32 array.

  >>> context_label(-1, -1), context_label(0, 1), context_label(1, 1)
  (0, 4, 7)
  >>> [7 - context_label(dy, dx) == context_label(-dy, -dx) for dy, dx in CONTEXT_OFFSETS[:3]]
  [True, True, True]
  """
  if isinstance(dy, int) and isinstance(dx, int):
    if dy not in (-1, 0, 1) or dx not in (-1, 0, 1) or (dy, dx) == (0, 0):
      raise ValueError(f"(dy, dx) must be a neighbour offset in {{-1, 0, 1}}^2, got {(dy, dx)}")
    k = (dy + 1) * 3 + (dx + 1)
    return k - (k > 4)
  k = (jnp.asarray(dy, jnp.int32) + 1) * 3 + (jnp.asarray(dx, jnp.int32) + 1)
  return k - (k > 4).astype(jnp.int32)
