"""Pretext-task inputs: rotations, context-prediction patch pairs, jigsaw tiles and permutations.

Stateless TensorFlow ops (every random op takes a ``[2]`` seed, the same seed gives the same
output eagerly and inside ``tf.data``), plus the NumPy permutation-set generator of jigsaw
(label generation, computed once per run, deterministic given its seed).

* Rotation prediction (Gidaris et al., ICLR 2018): :func:`rotations`, every image at 0, 90,
  180 and 270 degrees counter-clockwise, labels 0..3 (the convention of
  ``jax_ssl.losses.rotate_batch``).
* Context prediction (Doersch et al., ICCV 2015, Sec. 3 and 4): :func:`sample_context_pair`
  places a first patch uniformly and a second one in one of the 8 neighbouring grid cells at
  stride ``patch + gap``, both jittered by up to ``jitter`` pixels per axis; the label follows
  ``jax_ssl.losses.CONTEXT_OFFSETS`` (raster order skipping the centre). Shortcut prevention:
  :func:`resize_to_area` (images rescaled to 150K-450K pixels), :func:`color_drop_noise`,
  :func:`color_projection`, :func:`random_downsample`.
* Jigsaw puzzles (Noroozi & Favaro, ECCV 2016, Sec. 3 and 4): :func:`jigsaw_tiles` crops a
  ``crop x crop`` window, splits it into ``grid x grid`` cells and takes a ``tile x tile`` tile
  at a random place in each cell (the random placement makes gaps and jitter), shuffles the
  tiles by a permutation from :func:`hamming_permutations` (Algorithm 1 of the paper) and
  normalizes each tile on its own.
* Damaged jigsaw puzzles (Kim et al., WACV 2018): :func:`damaged_jigsaw_puzzle`, the same
  puzzle with one position left blank and the colour dropped from the other tiles; the targets
  are the permutation, the missing tile's pixels and every tile's ab colour.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import tensorflow as tf

from jax_ssl.data.ops._base import lightness_to_gray, rgb_to_lab
from jax_ssl.losses import CONTEXT_OFFSETS

__all__ = [
    "rotations", "pad_and_crop",
    "context_min_side", "resize_to_area", "sample_context_pair", "crop_patch", "color_drop_noise",
    "color_projection", "random_downsample", "context_pair",
    "hamming_permutations", "min_hamming_distance", "sample_jigsaw_tiles", "standardize_tile",
    "jigsaw_tiles", "damaged_jigsaw_puzzle",
]

# -------------------------------------------------------------------------------------------------
# Helpers
# -------------------------------------------------------------------------------------------------


def _split(seed, num: int) -> list:
  return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num))


def _randint(seed, shape, minval, maxval):
  """Integers uniform in ``[minval, maxval]`` (inclusive; tensors allowed, broadcast)."""
  u = tf.random.stateless_uniform(shape, seed=seed, dtype=tf.float32)
  lo = tf.cast(minval, tf.float32)
  span = tf.cast(maxval, tf.float32) - lo + 1.0
  return tf.cast(tf.minimum(tf.floor(lo + u * span), tf.cast(maxval, tf.float32)), tf.int32)


def _uniform(seed, shape=(), minval=0.0, maxval=1.0):
  return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval, dtype=tf.float32)


# -------------------------------------------------------------------------------------------------
# Rotation (RotNet)
# -------------------------------------------------------------------------------------------------


def rotations(image) -> tuple[tf.Tensor, tf.Tensor]:
  """``image [H, H, C]`` -> ``([4, H, H, C], labels int32 [4] = 0..3)``: k * 90 degrees CCW.

  Same convention as ``jax_ssl.losses.rotate_batch`` (``np.rot90(image, k)``), so a batch of
  these stacked image-major equals ``rotate_batch`` of the unrotated batch (tested).
  """
  image = tf.convert_to_tensor(image)
  if image.shape[0] is not None and image.shape[1] is not None and image.shape[0] != image.shape[1]:
    raise ValueError(f"rotations needs a square image, got {image.shape}")
  return tf.stack([tf.image.rot90(image, k) for k in range(4)]), tf.range(4, dtype=tf.int32)


def pad_and_crop(image, seed, *, pad: int = 4) -> tf.Tensor:
  """Zero-pad by ``pad`` and crop back to the input size at a random place (CIFAR augmentation)."""
  image = tf.convert_to_tensor(image)
  shape = tf.shape(image)
  padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
  offs = _randint(seed, [2], 0, 2 * pad)
  out = padded[offs[0]:offs[0] + shape[0], offs[1]:offs[1] + shape[1], :]
  return tf.ensure_shape(out, image.shape)


# -------------------------------------------------------------------------------------------------
# Context prediction (Doersch et al. 2015)
# -------------------------------------------------------------------------------------------------

_OFFSETS = tf.constant(CONTEXT_OFFSETS, tf.int32)  # label -> (dy, dx)


def context_min_side(*, patch: int, gap: int, jitter: int) -> int:
  """The smallest image side on which any of the 8 pairs fits: ``2 patch + gap + 2 jitter``."""
  return 2 * patch + gap + 2 * jitter


def resize_to_area(image, seed, *, area_range=(150_000, 450_000), min_side: int = 0) -> tf.Tensor:
  """Rescales ``image [H, W, C]`` (aspect kept) to a total area uniform in ``area_range``.

  Doersch et al. Sec. 4: "we resize each image to between 150K and 450K total pixels". The
  shorter side is then raised to at least ``min_side`` (so a patch pair always fits). Float
  output clipped to ``[0, 1]``.
  """
  image = tf.convert_to_tensor(image, tf.float32)
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  area = _uniform(seed, (), float(area_range[0]), float(area_range[1]))
  scale = tf.sqrt(area / (h * w))
  scale = tf.maximum(scale, float(min_side) / tf.minimum(h, w))
  nh = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), min_side)
  nw = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), min_side)
  out = tf.image.resize(image, [nh, nw], method="bilinear", antialias=True)
  return tf.clip_by_value(out, 0.0, 1.0)


def sample_context_pair(seed, height, width, *, patch: int, gap: int, jitter: int) -> dict:
  """Positions of a context-prediction patch pair in a ``height x width`` image.

  Doersch et al. 2015, Sec. 3 (Fig. 2): the label ``l`` (uniform over 8) picks the
  neighbour cell ``(dy, dx) = CONTEXT_OFFSETS[l]``; the first patch's grid position is uniform
  over all places where both patches (with jitter) fit; the second sits ``(dy, dx) * (patch +
  gap)`` away; each patch then moves by an independent jitter uniform in ``[-jitter, jitter]``
  per axis. So the patches never overlap when ``gap >= 2 jitter`` and are at least
  ``gap - 2 jitter`` pixels apart along the offset's axes.

  Args:
    seed: ``[2]`` stateless seed.
    height, width: image size (ints or scalar tensors), at least :func:`context_min_side`.

  Returns:
    ``{"label": int32 [], "tops": int32 [2], "lefts": int32 [2], "jitter": int32 [2, 2]}``
    (top-left corners of patch 1 and 2; ``jitter[i] = (dy_i, dx_i)`` of patch ``i``).
  """
  if gap < 2 * jitter:
    raise ValueError(f"context patches would overlap: gap {gap} < 2 * jitter {jitter}")
  s_label, s_pos, s_jit = _split(seed, 3)
  label = _randint(s_label, [], 0, 7)
  dy, dx = _OFFSETS[label][0], _OFFSETS[label][1]
  stride = patch + gap
  h = tf.cast(height, tf.int32)
  w = tf.cast(width, tf.int32)
  tf.debugging.assert_greater_equal(
      tf.minimum(h, w), context_min_side(patch=patch, gap=gap, jitter=jitter),
      message="image too small for the context-prediction geometry (resize it first)")
  y_lo = jitter + tf.maximum(0, -dy) * stride
  y_hi = h - patch - jitter - tf.maximum(0, dy) * stride
  x_lo = jitter + tf.maximum(0, -dx) * stride
  x_hi = w - patch - jitter - tf.maximum(0, dx) * stride
  pos = _randint(s_pos, [2], tf.stack([y_lo, x_lo]), tf.stack([y_hi, x_hi]))
  jit = _randint(s_jit, [2, 2], -jitter, jitter)
  tops = tf.stack([pos[0] + jit[0, 0], pos[0] + dy * stride + jit[1, 0]])
  lefts = tf.stack([pos[1] + jit[0, 1], pos[1] + dx * stride + jit[1, 1]])
  return {"label": label, "tops": tops, "lefts": lefts, "jitter": jit}


def crop_patch(image, top, left, size: int) -> tf.Tensor:
  """The ``size x size`` patch of ``image`` at ``(top, left)``."""
  out = image[top:top + size, left:left + size, :]
  return tf.ensure_shape(out, [size, size, image.shape[-1]])


def color_drop_noise(patch, seed, *, noise_fraction: float = 0.01) -> tf.Tensor:
  """Keeps one random colour channel; the two others become Gaussian noise.

  Doersch et al. Sec. 4 ("color dropping"): "randomly drop 2 of the 3 color channels from each
  patch, replacing the dropped colors with Gaussian noise (standard deviation ~1/100 the
  standard deviation of the remaining channel)". The noise is centred on the kept channel's
  mean so the patch keeps its brightness. ``patch [h, w, 3]`` float.
  """
  s_ch, s_noise = _split(seed, 2)
  keep = _randint(s_ch, [], 0, 2)
  kept = tf.gather(patch, keep, axis=-1)
  mean, var = tf.nn.moments(kept, axes=[0, 1])
  noise = mean + noise_fraction * tf.sqrt(var) * tf.random.stateless_normal(tf.shape(patch), seed=s_noise)
  mask = tf.one_hot(keep, 3, dtype=patch.dtype)
  return patch * mask + noise * (1.0 - mask)


# The green-magenta axis (Doersch et al. Sec. 4, "projection"): chromatic aberration shifts
# green relative to magenta, so that colour direction is removed from every pixel.
_GREEN_MAGENTA = np.array([-0.5, 1.0, -0.5]) / np.linalg.norm([-0.5, 1.0, -0.5])


def color_projection(patch) -> tf.Tensor:
  """Removes each pixel's green-magenta component: ``x - (x . g) g``, ``g ~ (-1, 2, -1)``.

  ``g`` is orthogonal to gray ``(1, 1, 1)``, so brightness is unchanged (Doersch et al.
  Sec. 4: "project the colors toward gray along the green-magenta axis"). Clipped to [0, 1].
  """
  g = tf.constant(_GREEN_MAGENTA, patch.dtype)
  comp = tf.tensordot(patch, g, axes=[[-1], [0]])[..., None]
  return tf.clip_by_value(patch - comp * g, 0.0, 1.0)


def random_downsample(patch, seed, *, p: float = 0.5, min_area: int = 100) -> tf.Tensor:
  """With probability ``p``, down-sample to an area log-uniform in ``[min_area, h*w]``, then back.

  Doersch et al. Sec. 4: "we randomly downsample some patches to as little as 100 total
  pixels, and then upsample it", so the network cannot rely on fine-grained detail
  (e.g. chromatic aberration) alone.
  """
  if p <= 0:
    return patch
  h, w = patch.shape[0], patch.shape[1]
  s_apply, s_area = _split(seed, 2)
  log_area = _uniform(s_area, (), math.log(min_area), math.log(h * w))
  side = tf.sqrt(tf.exp(log_area))
  nh = tf.clip_by_value(tf.cast(tf.round(side * (h / math.sqrt(h * w))), tf.int32), 1, h)
  nw = tf.clip_by_value(tf.cast(tf.round(side * (w / math.sqrt(h * w))), tf.int32), 1, w)

  def down_up():
    small = tf.image.resize(patch, [nh, nw], method="area")
    return tf.clip_by_value(tf.image.resize(small, [h, w], method="bilinear"), 0.0, 1.0)

  out = tf.cond(_uniform(s_apply) < p, down_up, lambda: patch)
  return tf.ensure_shape(out, patch.shape)


def context_pair(image, seed, *, patch: int = 96, gap: int = 48, jitter: int = 7, area_range=None,
                 color: str = "drop", downsample_p: float = 0.5, min_area: int = 100) -> dict:
  """A context-prediction training example from one float image ``[H, W, 3]`` in ``[0, 1]``.

  Resize (``area_range``, or only up to :func:`context_min_side` when None), sample the pair
  (:func:`sample_context_pair`), then per patch: colour (``"drop"``: :func:`color_drop_noise`,
  ``"projection"``: :func:`color_projection`, ``"none"``) and :func:`random_downsample`.

  Returns ``{"patches": float32 [2, patch, patch, 3] in [0, 1] (first, second), "label":
  int32 []}``.
  """
  if color not in ("drop", "projection", "none"):
    raise ValueError(f"color must be 'drop', 'projection' or 'none', got {color!r}")
  s_resize, s_pair, s_p1, s_p2 = _split(seed, 4)
  min_side = context_min_side(patch=patch, gap=gap, jitter=jitter)
  image = tf.convert_to_tensor(image, tf.float32)
  if area_range is not None:
    image = resize_to_area(image, s_resize, area_range=area_range, min_side=min_side)
  else:
    image = _ensure_min_side(image, min_side)
  shape = tf.shape(image)
  pair = sample_context_pair(s_pair, shape[0], shape[1], patch=patch, gap=gap, jitter=jitter)
  out = []
  for i, s in enumerate((s_p1, s_p2)):
    s_color, s_down = _split(s, 2)
    x = crop_patch(image, pair["tops"][i], pair["lefts"][i], patch)
    if color == "drop":
      x = color_drop_noise(x, s_color)
    elif color == "projection":
      x = color_projection(x)
    x = random_downsample(x, s_down, p=downsample_p, min_area=min_area)
    out.append(x)
  return {"patches": tf.stack(out), "label": pair["label"]}


def _ensure_min_side(image, min_side: int):
  shape = tf.shape(image)
  h, w = shape[0], shape[1]

  def up():
    scale = float(min_side) / tf.cast(tf.minimum(h, w), tf.float32)
    nh = tf.maximum(tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32), min_side)
    nw = tf.maximum(tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32), min_side)
    return tf.clip_by_value(tf.image.resize(image, [nh, nw], method="bilinear"), 0.0, 1.0)

  return tf.cond(tf.minimum(h, w) < min_side, up, lambda: image)


# -------------------------------------------------------------------------------------------------
# Jigsaw puzzles (Noroozi & Favaro 2016)
# -------------------------------------------------------------------------------------------------


def hamming_permutations(num: int, *, grid: int = 3, seed: int = 0, criterion: str = "mean") -> np.ndarray:
  """``num`` permutations of ``grid**2`` tiles chosen for large Hamming distances (int32 [num, T]).

  Noroozi & Favaro 2016, Algorithm 1 (and their ``select_permutations``): the first
  permutation is uniform over all ``T!``; each next one is the remaining permutation with the
  largest Hamming distance to the chosen set, where ``criterion="mean"`` (the paper's
  ``1^T D``: summed distance to every chosen permutation) or ``"min"`` (distance to the
  nearest chosen one, a max-min design with a larger minimum distance). Ties go to the first
  in lexicographic order, so the set is a deterministic function of ``(num, grid, seed,
  criterion)``. For ``grid=3`` this scans all 362,880 permutations per pick (about 3 ms each).
  """
  return _hamming_permutations(int(num), int(grid), int(seed), str(criterion)).copy()


@functools.lru_cache(maxsize=16)
def _hamming_permutations(num: int, grid: int, seed: int, criterion: str) -> np.ndarray:
  """The computation behind `hamming_permutations`, cached per process (seconds for 1,000)."""
  if criterion not in ("mean", "min"):
    raise ValueError(f"criterion must be 'mean' or 'min', got {criterion!r}")
  t = grid * grid
  total = math.factorial(t)
  if not 1 <= num <= total:
    raise ValueError(f"cannot choose {num} distinct permutations of {t} tiles (there are {total})")
  allp = np.array(list(itertools.permutations(range(t))), dtype=np.int8)
  rng = np.random.RandomState(seed)
  j = int(rng.randint(total))
  score = np.zeros(total, np.int32) if criterion == "mean" else np.full(total, t + 1, np.int32)
  taken = np.zeros(total, bool)
  chosen = []
  for _ in range(num):
    chosen.append(j)
    taken[j] = True
    d = np.sum(allp != allp[j], axis=1, dtype=np.int32)
    score = score + d if criterion == "mean" else np.minimum(score, d)
    masked = np.where(taken, -1, score)
    j = int(np.argmax(masked))
  return allp[chosen].astype(np.int32)


def min_hamming_distance(perms) -> int:
  """The smallest Hamming distance between two rows of ``perms [P, T]``."""
  perms = np.asarray(perms)
  d = np.sum(perms[:, None, :] != perms[None, :, :], axis=-1)
  d[np.diag_indices(len(perms))] = perms.shape[1] + 1
  return int(d.min())


def sample_jigsaw_tiles(seed, *, crop: int = 225, grid: int = 3, tile: int = 64) -> tf.Tensor:
  """Top-left corners (in the ``crop x crop`` window) of the ``grid**2`` tiles, int32 [T, 2].

  Noroozi & Favaro Sec. 4: the window is split into ``grid x grid`` cells of ``crop // grid``
  pixels and a ``tile x tile`` tile is picked at a uniformly random place inside each cell,
  raster order. Tiles therefore never overlap; neighbouring tiles are ``0 .. 2 (cell - tile)``
  pixels apart (mean ``cell - tile``, 11 px at the paper's 225/75/64).
  """
  cell = crop // grid
  if tile > cell:
    raise ValueError(f"jigsaw tile {tile} is larger than the cell {cell} (= crop {crop} // grid {grid})")
  t = grid * grid
  offs = _randint(seed, [t, 2], 0, cell - tile)
  rows = tf.constant([[r * cell, c * cell] for r in range(grid) for c in range(grid)], tf.int32)
  return rows + offs


def standardize_tile(tile, eps: float = 1e-5) -> tf.Tensor:
  """Per-channel zero mean and unit std over one tile (Noroozi & Favaro Sec. 4: "we normalize the
  mean and the standard deviation of each patch independently"); a flat channel stays 0."""
  mean, var = tf.nn.moments(tile, axes=[-3, -2], keepdims=True)  # [..., h, w, C]: batches work too
  std = tf.sqrt(var)
  return (tile - mean) / tf.where(std < eps, tf.ones_like(std), std)


def _channel_shifted_tile(window, top, left, tile: int, shifts):
  """The tile at (top, left) of a window padded by ``max|shift|``, each channel moved by its shift."""
  chans = []
  for c in range(3):
    y = top + shifts[c, 0]
    x = left + shifts[c, 1]
    chans.append(window[y:y + tile, x:x + tile, c])
  return tf.stack(chans, axis=-1)


def jigsaw_tiles(image, seed, permutations, *, resize: int = 256, crop: int = 225, grid: int = 3,
                 tile: int = 64, gray_p: float = 0.3, channel_jitter: int = 2,
                 normalize_tiles: bool = True) -> dict:
  """A jigsaw puzzle from one float image ``[H, W, 3]`` in ``[0, 1]``.

  Noroozi & Favaro 2016, Sec. 3-4: the shorter side is resized to ``resize``, a random
  ``crop x crop`` window is cut, split into ``grid x grid`` cells with a ``tile`` tile at a
  random place in each (:func:`sample_jigsaw_tiles`). Shortcut prevention: the whole puzzle is
  grayscale with probability ``gray_p`` (30% in the authors' released training code), each
  colour channel of each tile is shifted independently by up to ``channel_jitter`` pixels (the
  paper's colour-channel jitter against chromatic aberration) and each tile is standardized on
  its own (:func:`standardize_tile`). A permutation index ``label`` is drawn uniformly from
  ``permutations [P, T]``; output position ``i`` holds tile ``permutations[label, i]`` (the
  authors' convention).

  Returns ``{"tiles": float32 [T, tile, tile, 3], "label": int32 []}``.
  """
  perms = tf.constant(np.asarray(permutations), tf.int32)
  num_perms = int(perms.shape[0])
  s_crop, s_tiles, s_gray, s_label, s_chan = _split(seed, 5)
  image = tf.convert_to_tensor(image, tf.float32)
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  scale = float(resize) / tf.minimum(h, w)
  nh = tf.maximum(tf.cast(tf.round(h * scale), tf.int32), resize)
  nw = tf.maximum(tf.cast(tf.round(w * scale), tf.int32), resize)
  image = tf.clip_by_value(tf.image.resize(image, [nh, nw], method="bilinear", antialias=True), 0.0, 1.0)
  off = _randint(s_crop, [2], 0, tf.stack([nh - crop, nw - crop]))
  window = image[off[0]:off[0] + crop, off[1]:off[1] + crop, :]
  luma = tf.tensordot(window, tf.constant([0.2989, 0.5870, 0.1140]), axes=[[-1], [0]])[..., None]
  gray = tf.tile(luma, [1, 1, 3])
  window = tf.cond(_uniform(s_gray) < gray_p, lambda: gray, lambda: window)
  cj = channel_jitter
  if cj:
    window = tf.pad(window, [[cj, cj], [cj, cj], [0, 0]], mode="REFLECT")
  corners = sample_jigsaw_tiles(s_tiles, crop=crop, grid=grid, tile=tile)
  t = grid * grid
  shifts = _randint(s_chan, [t, 3, 2], -cj, cj) + cj if cj else tf.zeros([t, 3, 2], tf.int32)
  tiles = []
  for i in range(t):
    x = _channel_shifted_tile(window, corners[i, 0], corners[i, 1], tile, shifts[i])
    x = tf.ensure_shape(x, [tile, tile, 3])
    tiles.append(standardize_tile(x) if normalize_tiles else x)
  tiles = tf.stack(tiles)
  label = _randint(s_label, [], 0, num_perms - 1)
  return {"tiles": tf.gather(tiles, perms[label]), "label": label}


def damaged_jigsaw_puzzle(image, seed, permutations, *, resize: int = 256, crop: int = 225, grid: int = 3,
                          tile: int = 64, channel_jitter: int = 0, ab_stride: int = 4, return_rgb: bool = False) -> dict:
  """A damaged jigsaw puzzle (Kim et al. 2018) from one float image ``[H, W, 3]`` in ``[0, 1]``.

  The tiles and the permutation of :func:`jigsaw_tiles` (same geometry, same seed use; never
  grey: the colour is a target), then: one output position ``missing``, uniform over the ``T``
  positions, is left blank (all zeros, the mean of a standardized tile) and every other tile
  loses its colour: the input is the achromatic sRGB image of the tile's CIE L
  (``lightness_to_gray(rgb_to_lab(tile)[..., :1])``), standardized per tile as Jigsaw's tiles.

  Returns ``{"tiles": float32 [T, tile, tile, 3]`` (the network's input), ``"label": int32 []``
  (the permutation's index), ``"missing": int32 []``, ``"target": float32 [tile, tile, 3]`` (the
  missing tile's colour pixels in ``[-1, 1]``), ``"ab": float32 [T, tile/ab_stride, tile/ab_stride, 2]``
  (every ``ab_stride``-th pixel's ab, as Colorization's targets; zeros at the missing position,
  so that the colour loss skips it as a grey tile)}``; with ``return_rgb`` also ``"rgb"``: the
  undamaged tiles ``[T, tile, tile, 3]`` in ``[0, 1]`` (pictures).
  """
  if tile % ab_stride:
    raise ValueError(f"tile {tile} is not a multiple of ab_stride {ab_stride}")
  s_puzzle, s_missing = _split(seed, 2)
  out = jigsaw_tiles(image, s_puzzle, permutations, resize=resize, crop=crop, grid=grid, tile=tile, gray_p=0.0,
                     channel_jitter=channel_jitter, normalize_tiles=False)
  rgb = out["tiles"]  # [T, t, t, 3] in [0, 1], in output order
  t = grid * grid
  missing = _randint(s_missing, [], 0, t - 1)
  present = tf.cast(tf.not_equal(tf.range(t), missing), tf.float32)  # [T]
  lab = rgb_to_lab(rgb)
  gray = standardize_tile(lightness_to_gray(lab[..., :1]))
  puzzle = {"tiles": gray * present[:, None, None, None], "label": out["label"], "missing": missing,
            "target": tf.gather(rgb, missing) * 2.0 - 1.0,
            "ab": lab[:, ::ab_stride, ::ab_stride, 1:] * present[:, None, None, None]}
  return {**puzzle, "rgb": rgb} if return_rgb else puzzle
