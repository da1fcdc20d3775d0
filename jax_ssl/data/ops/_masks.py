"""Segmentation-mask ops for DetCon (Hénaff et al. 2021): views that carry their masks.

A mask is an integer id map ``[H, W]`` (0 <= id < ``num_ids``) aligned with the image: a
Felzenszwalb-Huttenlocher segmentation, a ground-truth map, or a spatial grid. A view of
(image, mask) applies ONE random crop box and ONE flip to both, bilinear for the image and
nearest-neighbour for the mask, then the mask is reduced to the backbone's feature grid by
majority vote and ``num_samples`` ids are drawn among those present (DetCon-B's
``create_binary_mask`` / ``sample_masks`` of the official google-deepmind/detcon code, done
per example in the input pipeline instead of on device).
"""

from __future__ import annotations

import tensorflow as tf

from jax_ssl.data.ops import _base as _ops


def grid_mask(height, width, grid: int) -> tf.Tensor:
  """The spatial-heuristic mask: a ``grid x grid`` partition of an ``height x width`` image.

  Pixel ``(r, c)`` gets id ``(r * grid // height) * grid + c * grid // width`` (int32),
  ids in raster order. DetCon's baseline of masks that ignore image content (paper Sec. 4.4).
  """
  rows = tf.range(height, dtype=tf.int32) * grid // height
  cols = tf.range(width, dtype=tf.int32) * grid // width
  return rows[:, None] * grid + cols[None, :]


def crop_flip_pair(image, mask, seed, *, size: int, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
                   flip_p: float = 0.5):
  """The same random resized crop and flip of ``image [H, W, 3]`` (float) and ``mask [H, W]``.

  The image is resized bilinearly (as :func:`random_resized_crop`), the mask with nearest
  neighbour so it keeps its ids. ``seed`` is split exactly as :func:`simclr_view` splits its
  seed, so the image equals the geometric part of ``simclr_view(image, seed)``.

  Returns:
    (image ``[size, size, 3]`` float32, mask ``[size, size]`` int32).
  """
  s_crop, s_flip, _, _, _ = _ops.split_seed(seed, 5)
  shape = tf.shape(image)
  box = _ops.sample_crop_box(s_crop, shape[0], shape[1], scale=tuple(crop_scale), ratio=tuple(crop_ratio))
  flip = _ops.sample_flip(s_flip, flip_p)
  image = _ops.flip_left_right(_ops.crop_and_resize(image, box, size), flip)
  mask = tf.cast(mask, tf.int32)[..., None]
  mask = _ops.flip_left_right(_ops.crop_and_resize(mask, box, size, method="nearest"), flip)[..., 0]
  return tf.ensure_shape(image, [size, size, 3]), tf.ensure_shape(mask, [size, size])


def color_part(image, seed, *, jitter_strength: float = 1.0, jitter_p: float = 0.8, gray_p: float = 0.2,
               blur_p: float = 0.0, solarize_p: float = 0.0):
  """The photometric part of :func:`simclr_view` (same seed split): jitter, gray, blur, solarize."""
  _, _, s_color, s_blur, s_sol = _ops.split_seed(seed, 5)
  image = _ops.color_drop(image, s_color, strength=jitter_strength, jitter_p=jitter_p, gray_p=gray_p)
  image = _ops.random_gaussian_blur(image, s_blur, blur_p)
  return _ops.random_solarize(image, s_sol, solarize_p)


def downsample_mask(mask, grid: int, *, num_ids: int) -> tf.Tensor:
  """Majority vote of ``mask [S, S]`` over ``(S / grid)``-pixel cells -> ``[grid, grid]`` int32.

  Each cell takes the id with the largest area in it; ties go to the smaller id (the official
  code's ``argmax`` of average-pooled one-hot masks, made deterministic). ``S`` must be a
  multiple of ``grid`` and ids must lie in ``[0, num_ids)``.
  """
  size = mask.shape[0]
  if size is None or size % grid:
    raise ValueError(f"mask side {size} must be a static multiple of the feature grid {grid}")
  f = size // grid
  mask = tf.cast(mask, tf.int32)
  cells = tf.reshape(tf.transpose(tf.reshape(mask, [grid, f, grid, f]), [0, 2, 1, 3]), [grid, grid, f * f])
  counts = tf.reduce_sum(tf.one_hot(cells, num_ids, dtype=tf.int32), axis=2)  # [g, g, num_ids]
  # Unique maximum: more area wins, then the smaller id (tf.argmax does not promise a tie rule).
  score = counts * num_ids + (num_ids - 1 - tf.range(num_ids, dtype=tf.int32))
  return tf.argmax(score, axis=-1, output_type=tf.int32)


def sample_mask_ids(mask, seed, *, num_ids: int, num_samples: int = 16) -> tf.Tensor:
  """``num_samples`` ids drawn uniformly, with replacement, among the ids present in ``mask``.

  Returns int32 ``[num_samples]``. (DetCon-B's ``sample_masks``: 16 per image and view.)
  """
  present = tf.reduce_max(tf.one_hot(tf.reshape(tf.cast(mask, tf.int32), [-1]), num_ids, dtype=tf.int32), axis=0) > 0
  logits = tf.where(present, 0.0, -1e9)[None, :]
  ids = tf.random.stateless_categorical(logits, num_samples, seed=tf.cast(seed, tf.int64), dtype=tf.int32)[0]
  return ids


def binary_masks(mask, ids) -> tf.Tensor:
  """``[R, h, w]`` float32: slot ``r`` is 1 where ``mask == ids[r]``."""
  return tf.cast(tf.equal(tf.cast(mask, tf.int32)[None], tf.cast(ids, tf.int32)[:, None, None]), tf.float32)


def detcon_view(image, mask, seed, *, size: int, grid: int, num_ids: int = 256, num_samples: int = 16,
                crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p: float = 0.5, **color_kwargs):
  """One DetCon view: ``simclr_view``'s image plus the masks of the same crop and flip.

  Args:
    image: float32 ``[H, W, 3]`` in ``[0, 1]``.
    mask: integer ``[H, W]`` id map aligned with ``image``, ids in ``[0, num_ids)``.
    seed: ``[2]`` stateless seed (split as :func:`simclr_view`, plus one for the id sampling).
    size: output side; a multiple of ``grid``.
    grid: side of the backbone's feature map for a ``size`` input (CIFAR stem at 32 px: 4).
    num_ids: upper bound on the ids (one-hot depth).
    num_samples: mask slots per view (R).
    color_kwargs: the photometric arguments of :func:`simclr_view`.

  Returns:
    {"image": [size, size, 3] float32, "mask": [size, size] int32 (the view's full-resolution
    mask), "masks": [R, grid, grid] float32 binary, "ids": [R] int32}.
  """
  view_seed, id_seed = _ops.split_seed(seed, 2)
  img, m = crop_flip_pair(image, mask, view_seed, size=size, crop_scale=crop_scale, crop_ratio=crop_ratio,
                          flip_p=flip_p)
  img = color_part(img, view_seed, **color_kwargs)
  small = downsample_mask(m, grid, num_ids=num_ids)
  ids = sample_mask_ids(small, id_seed, num_ids=num_ids, num_samples=num_samples)
  return {"image": tf.ensure_shape(img, [size, size, 3]), "mask": m, "masks": binary_masks(small, ids), "ids": ids}
