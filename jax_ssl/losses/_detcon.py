"""DetCon: contrastive detection over mask-pooled features."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common

# The official code removes logits from the softmax by subtracting this number.
_INFINITY_PROXY = 1e9


def mask_pool(features: jax.Array, masks: jax.Array, *, eps: float = 1.0) -> jax.Array:
  """Mean of ``features`` over each mask's area: ``sum_hw m * f / max(sum_hw m, eps)``.

  Hénaff et al., "Efficient Visual Pretraining with Contrastive Detection", ICCV 2021,
  Sec. 3.1 (mask-pooled hidden vectors ``h_m``). The default ``eps=1`` is DetCon-B's
  ``max(area, 1.)``: for binary masks it only guards empty masks (which pool to zero).

  Args:
    features: ``[B, H, W, C]`` feature map.
    masks: ``[B, R, H, W]`` binary (or one-hot float) masks on the same ``H x W`` grid.
    eps: lower bound on the area, in pixels of the ``H x W`` grid.

  Returns:
    ``[B, R, C]`` pooled vectors, float32 (float64 for float64 inputs).

  >>> import jax.numpy as jnp
  >>> f = jnp.arange(4.0).reshape(1, 2, 2, 1)          # pixel values 0 1 / 2 3
  >>> m = jnp.array([[[[1, 1], [0, 0]], [[0, 0], [0, 1]]]])
  >>> print(mask_pool(f, m)[..., 0])
  [[0.5 3. ]]
  """
  if features.ndim != 4 or masks.ndim != 4 or features.shape[:3] != (
      masks.shape[0],) + masks.shape[2:]:
    raise ValueError(f"mask_pool expects features [B, H, W, C] and masks [B, R, H, W], got "
                     f"{features.shape}, {masks.shape}")
  dtype = _common.compute_dtype(features)
  features = features.astype(dtype)
  masks = masks.astype(dtype)
  area = jnp.sum(masks, axis=(2, 3))[..., None]
  pooled = jnp.einsum("brhw,bhwc->brc", masks, features, precision=jax.lax.Precision.HIGHEST)
  return pooled / jnp.maximum(area, eps)


def _direction(pred, pos_targets, neg_targets, pred_ids, pos_ids, neg_ids, image_offset, *,
               temperature, local_negatives):
  """One direction of DetCon: ``pred`` slots against [pos_targets; neg_targets] of all devices.

  pred: [b, R, D] local; pos_targets, neg_targets: [B', R, D] gathered; ids: [b, R] local.
  """
  b, r, _ = pred.shape
  b_all = pos_targets.shape[0]
  hi = jax.lax.Precision.HIGHEST
  logits_pos = jnp.einsum("brd,ucd->bruc", pred, pos_targets, precision=hi) / temperature
  logits_neg = jnp.einsum("brd,ucd->bruc", pred, neg_targets, precision=hi) / temperature

  # [b, 1, B', 1]: candidate slot belongs to the anchor's own image.
  same_image = (jnp.arange(b_all)[None, :] == (jnp.arange(b) + image_offset)[:, None])
  same_image = same_image[:, None, :, None]
  # [b, R, 1, R]: candidate slot (of the anchor's image) carries the anchor's mask id.
  same_id_pos = (pred_ids[:, :, None] == pos_ids[:, None, :])[:, :, None, :]
  same_id_neg = (pred_ids[:, :, None] == neg_ids[:, None, :])[:, :, None, :]

  labels = (same_image & same_id_pos).astype(logits_pos.dtype)
  # The same object in the anchor's own view is neither positive nor negative.
  drop_pos = jnp.zeros_like(labels, dtype=bool)
  drop_neg = same_image & same_id_neg
  if not local_negatives:
    drop_pos = same_image & ~same_id_pos
    drop_neg = jnp.broadcast_to(same_image, logits_neg.shape)
  logits_pos = logits_pos - _INFINITY_PROXY * drop_pos.astype(logits_pos.dtype)
  logits_neg = logits_neg - _INFINITY_PROXY * drop_neg.astype(logits_neg.dtype)

  logits = jnp.concatenate([logits_pos, logits_neg], axis=2).reshape(b, r, -1)
  labels = jnp.concatenate([labels, jnp.zeros_like(labels)], axis=2).reshape(b, r, -1)
  num_pos = jnp.sum(labels, axis=-1)
  labels = labels / jnp.maximum(num_pos, 1.0)[..., None]
  # Each object counts once per image however many slots sampled it.
  area = jnp.sum(pred_ids[:, :, None] == pred_ids[:, None, :], axis=-1).astype(labels.dtype)
  weights = (num_pos > 1e-3).astype(labels.dtype) / area
  ce = -jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1)
  return jnp.mean(weights * ce)


def detcon_loss(pred1: jax.Array, pred2: jax.Array, target1: jax.Array, target2: jax.Array,
                pred_ids1: jax.Array, pred_ids2: jax.Array, target_ids1: jax.Array,
                target_ids2: jax.Array, *, temperature: float = 0.1, local_negatives: bool = True,
                axis_name=None) -> jax.Array:
  """DetCon's contrastive-detection loss (both directions), over mask-pooled slots.

  Hénaff et al., "Efficient Visual Pretraining with Contrastive Detection", ICCV 2021,
  Sec. 3.1, Eq. (3). Matches ``byol_nce_detcon`` / ``manual_cross_entropy`` of the official
  google-deepmind/detcon ``utils/losses.py`` (with ``use_replicator_loss=True``):

  * All vectors are L2-normalised; logits are ``cos / temperature``.
  * For each anchor slot of ``pred1`` the candidates are all slots of ``target2`` then all
    slots of ``target1``, from every device.
  * Positives: ``target2`` slots of the same image with the same mask id; the label mass is
    split evenly among them.
  * ``target1`` slots of the same image with the same id are removed from the softmax (as in
    the official code, by subtracting 1e9 from those logits, after the temperature).
  * All slots of other images are negatives; same-image slots with a different id are
    negatives when ``local_negatives``, else removed.
  * Slot weight: 0 without a positive, else ``1 / (count of its id among the image's pred
    slots)``. Direction loss: MEAN over all ``B * R`` slots (global batch) of
    ``weight * cross-entropy``.
  * The result is the SUM of the two directions: ``pred1`` vs ``[target2; target1]`` and
    ``pred2`` vs ``[target1; target2]``.

  With one slot per image (``R = 1``, equal ids) and predictions equal to targets this is
  exactly ``2 * nt_xent`` of the pooled vectors (SimCLR's own convention).

  Args:
    pred1, pred2: ``[B, R, D]`` online predictions of the R mask-pooled slots of views 1, 2
      (this device's images).
    target1, target2: ``[B, R, D]`` target projections of views 1, 2 (callers usually pass
      them under ``stop_gradient``; this function does not).
    pred_ids1, pred_ids2, target_ids1, target_ids2: ``[B, R]`` integer mask ids of the slots.
    temperature: divides the cosine logits.
    local_negatives: whether same-image slots of other objects are negatives.
    axis_name: mapped axis the batch is split over (``shard_map``/``pmap``): targets are
      gathered from every device and the result is the global mean on every device.

  Returns:
    Scalar loss, float32 (float64 for float64 inputs).

  >>> import jax.numpy as jnp
  >>> x = jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, -1.0]]])  # [2, 2, 2]
  >>> ids = jnp.array([[0, 1], [0, 1]])
  >>> print(f"{detcon_loss(x, x, x, x, ids, ids, ids, ids, temperature=1.0):.4f}")
  2.8302
  """
  if not (pred1.shape == pred2.shape == target1.shape == target2.shape) or pred1.ndim != 3:
    raise ValueError("detcon_loss expects pred1, pred2, target1, target2 of equal shape "
                     f"[B, R, D], got {pred1.shape}, {pred2.shape}, {target1.shape}, "
                     f"{target2.shape}")
  for ids in (pred_ids1, pred_ids2, target_ids1, target_ids2):
    if ids.shape != pred1.shape[:2]:
      raise ValueError(f"mask ids must be [B, R] = {pred1.shape[:2]}, got {ids.shape}")
  dtype = _common.compute_dtype(pred1, pred2, target1, target2)
  pred1, pred2, target1, target2 = (
      _common.l2_normalize(x.astype(dtype)) for x in (pred1, pred2, target1, target2))
  target1_all = _common.all_gather(target1, axis_name)
  target2_all = _common.all_gather(target2, axis_name)
  offset = _common.axis_index(axis_name) * pred1.shape[0]
  kw = dict(temperature=temperature, local_negatives=local_negatives)
  loss_a = _direction(pred1, target2_all, target1_all, pred_ids1, target_ids2, target_ids1,
                      offset, **kw)
  loss_b = _direction(pred2, target1_all, target2_all, pred_ids2, target_ids1, target_ids2,
                      offset, **kw)
  return _common.global_mean(loss_a + loss_b, axis_name)
