"""MAE: patches, per-image random masking and the masked normalized-pixel loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jax_ssl.losses import _common


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
  """Images ``[B, H, W, C]`` -> patches ``[B, (H/p)(W/p), p*p*C]``.

  Patches in raster order (row-major over the patch grid, as a ViT's tokens); each patch
  flattened in (pixel row, pixel column, channel) order: the order of MAE's ``patchify``
  (``einsum('nchpwq->nhwpqc')``), written for NHWC images.

  >>> import jax.numpy as jnp
  >>> x = jnp.arange(2 * 4 * 4 * 1).reshape(2, 4, 4, 1)
  >>> patchify(x, 2).shape
  (2, 4, 4)
  >>> patchify(x, 2)[0, 1].tolist()  # the top-right 2x2 patch of image 0
  [2, 3, 6, 7]
  """
  b, height, width, c = images.shape
  p = int(patch_size)
  if height % p or width % p:
    raise ValueError(f"patchify: image {height}x{width} is not a multiple of patch_size {p}")
  h, w = height // p, width // p
  x = images.reshape(b, h, p, w, p, c)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, h, w, p(row), p(col), C]
  return x.reshape(b, h * w, p * p * c)


def unpatchify(patches: jax.Array, patch_size: int, grid: tuple[int, int], channels: int = 3) -> jax.Array:
  """The inverse of `patchify`: ``[B, h*w, p*p*C]`` -> ``[B, h*p, w*p, C]`` for the grid (h, w)."""
  b = patches.shape[0]
  h, w = int(grid[0]), int(grid[1])
  p = int(patch_size)
  if patches.shape[1:] != (h * w, p * p * channels):
    raise ValueError(f"unpatchify: patches {patches.shape} do not fit a {h}x{w} grid of {p}x{p}x{channels}")
  x = patches.reshape(b, h, w, p, p, channels)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(b, h * p, w * p, channels)


def mae_num_visible(num_patches: int, mask_ratio: float) -> int:
  """Patches MAE keeps per image: ``int(L * (1 - mask_ratio))``, as the official code (truncation)."""
  if not 0.0 <= mask_ratio < 1.0:
    raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
  return int(num_patches * (1 - mask_ratio))


def mae_random_mask(rng: jax.Array, batch_size: int, num_patches: int, *,
                    mask_ratio: float = 0.75) -> tuple[jax.Array, jax.Array, jax.Array]:
  """MAE's per-image random masking (He et al. 2022, Sec. 3, "Masking"), by argsort of noise.

  As the official ``random_masking``: uniform noise ``[B, L]``; ``ids_shuffle = argsort(noise)``
  (ascending: the smallest noise is kept); ``ids_restore = argsort(ids_shuffle)``; the first
  ``int(L * (1 - mask_ratio))`` shuffled positions are kept. Every image keeps the same number
  of patches, so the encoder's input is a dense ``[B, L_keep, D]``.

  Args:
    rng: a JAX PRNG key.
    batch_size, num_patches: B and L.
    mask_ratio: the fraction removed (0.75 in MAE).

  Returns:
    ``(mask, ids_keep, ids_restore)``: ``mask`` float32 ``[B, L]``, 1 = removed, 0 = kept, in
    the original patch order; ``ids_keep`` int32 ``[B, L_keep]``, the kept patches' positions
    (gather the tokens with it); ``ids_restore`` int32 ``[B, L]``, such that gathering
    ``concat(kept tokens, mask tokens)`` with it puts every token back at its position.

  >>> import jax
  >>> mask, keep, restore = mae_random_mask(jax.random.key(0), 2, 16)
  >>> mask.shape, keep.shape, int(mask.sum())
  ((2, 16), (2, 4), 24)
  """
  keep = mae_num_visible(num_patches, mask_ratio)
  noise = jax.random.uniform(rng, (batch_size, num_patches))
  ids_shuffle = jnp.argsort(noise, axis=1).astype(jnp.int32)
  ids_restore = jnp.argsort(ids_shuffle, axis=1).astype(jnp.int32)
  ids_keep = ids_shuffle[:, :keep]
  mask_shuffled = jnp.concatenate([jnp.zeros((batch_size, keep), jnp.float32),
                                   jnp.ones((batch_size, num_patches - keep), jnp.float32)], axis=1)
  mask = jnp.take_along_axis(mask_shuffled, ids_restore, axis=1)
  return mask, ids_keep, ids_restore


def normalize_patches(target: jax.Array, *, eps: float = 1e-6) -> jax.Array:
  """MAE's ``norm_pix_loss`` targets: each patch minus its mean, over ``sqrt(var + eps)``.

  The variance is the UNBIASED one (divisor D - 1), as the official code's ``target.var(dim=-1)``
  (torch's default); the paper only says "normalized pixels". Over the last axis.
  """
  dtype = _common.compute_dtype(target)
  target = target.astype(dtype)
  d = target.shape[-1]
  if d < 2:
    raise ValueError("normalize_patches needs patches of at least 2 values (unbiased variance)")
  mean = jnp.mean(target, axis=-1, keepdims=True)
  var = jnp.sum(jnp.square(target - mean), axis=-1, keepdims=True) / (d - 1)
  return (target - mean) / jnp.sqrt(var + eps)


def mae_loss(pred: jax.Array, target: jax.Array, mask: jax.Array, *, norm_pix: bool = True,
             eps: float = 1e-6, axis_name=None) -> jax.Array:
  """MAE's reconstruction loss (He et al. 2022, Sec. 3, "Reconstruction target"), removed patches only.

  Convention (the official ``forward_loss``): the target is `patchify` of the images, normalized
  per patch when ``norm_pix`` (`normalize_patches`: unbiased variance, ``eps`` inside the square
  root); per-patch MSE = mean over the D patch values of ``(pred - target)^2``; the loss is
  ``sum(per_patch * mask) / sum(mask)``, both sums over the GLOBAL batch under ``axis_name``
  (so every removed patch weighs the same whichever device holds it). No gradient reaches
  ``target`` or ``mask``.

  Args:
    pred: ``[B, L, D]`` decoder predictions (this device's rows).
    target: ``[B, L, D]`` ``patchify(images, p)`` in the encoder's pixel space.
    mask: ``[B, L]``, 1 = removed (the loss's patches), 0 = visible.
    norm_pix: normalize each target patch (MAE's default and best setting).
    eps: the normalization's epsilon.
    axis_name: mapped axis the batch is split over, or None.

  Returns:
    Scalar, float32 (float64 for float64 inputs). Predicting zero for normalized targets
    gives about ``(D - 1) / D``, i.e. ~1.

  >>> import jax.numpy as jnp
  >>> t = jnp.array([[[0.0, 2.0], [1.0, 1.0]]])
  >>> print(mae_loss(jnp.zeros_like(t), t, jnp.array([[1.0, 0.0]]), norm_pix=False))  # (0 + 4) / 2
  2.0
  """
  if pred.shape != target.shape or mask.shape != pred.shape[:2]:
    raise ValueError(f"mae_loss expects pred, target [B, L, D] and mask [B, L]; got {pred.shape}, "
                     f"{target.shape}, {mask.shape}")
  dtype = _common.compute_dtype(pred, target)
  target = jax.lax.stop_gradient(target.astype(dtype))
  if norm_pix:
    target = normalize_patches(target, eps=eps)
  mask = jax.lax.stop_gradient(mask.astype(dtype))
  per_patch = jnp.mean(jnp.square(pred.astype(dtype) - target), axis=-1)
  count = jnp.sum(mask)
  if axis_name is not None:
    count = jax.lax.psum(count, axis_name)
  # sum over devices of (local numerator / global count), with global_mean's exact gradients.
  local = jnp.sum(per_patch * mask) / jnp.maximum(count, 1.0)
  return _common.global_mean(local, axis_name) * _common.axis_size(axis_name)
