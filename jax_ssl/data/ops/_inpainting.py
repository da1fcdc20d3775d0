"""Inpainting masks for Context Encoders (Pathak et al. 2016).

* `center_region`: the paper's central square (half the side), and the input hole inside it
  (``overlap`` pixels smaller on each side: the official ``overlapPred`` = 4 at 128 px).
* `random_region_mask`: the paper's random-region masks as the official ``train_random.lua``
  makes them: uniform noise on a coarse grid (``res`` = 0.06 cells per pixel) upsampled
  bicubically and thresholded at ``density`` = 0.25, a random window of it accepted when it
  covers 20-30% of the image. The official code draws one mask per batch (retrying until one
  is accepted); here every example gets its own (`tries` = 32 candidates, the first accepted one,
  or the candidate nearest 25% if none is: measured, 0.75% of 2,000 masks at 32 px, none of
  2,000 at 128 px; ~4 ms / 13 ms per mask on one CPU core).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from jax_ssl.data.ops import _base as _ops


def center_region(size: int, *, overlap: int = 4, fraction: float = 0.5) -> tuple[int, int, int]:
  """``(start, side, overlap)`` of the central square to predict in a ``size`` image: the square
  ``[start, start + side)`` on both axes, side = ``fraction * size``; the input hole is the
  square ``overlap`` pixels inside it (``[start + overlap, start + side - overlap)``)."""
  side = int(round(size * fraction))
  if side < 1 or (size - side) % 2:
    raise ValueError(f"a {size} px image has no central {fraction} region of even margins")
  if not 0 <= 2 * overlap < side:
    raise ValueError(f"overlap {overlap} leaves no hole in a {side} px centre")
  return (size - side) // 2, side, overlap


def center_masks(size: int, *, overlap: int = 4, fraction: float = 0.5, band_weight: float = 10.0):
  """numpy ``(hole [size, size, 1] float32: 1 where the input is filled, weights [side, side, 1]:
  the L2 weight of the predicted centre, 1 in the hole and `band_weight` on the overlap band)``."""
  start, side, overlap = center_region(size, overlap=overlap, fraction=fraction)
  hole = np.zeros((size, size, 1), np.float32)
  hole[start + overlap:start + side - overlap, start + overlap:start + side - overlap] = 1.0
  weights = np.full((side, side, 1), band_weight, np.float32)
  weights[overlap:side - overlap, overlap:side - overlap] = 1.0
  return hole, weights


def random_region_mask(seed, size: int, *, res: float = 0.06, density: float = 0.25,
                       area: tuple[float, float] = (0.2, 0.3), tries: int = 32) -> tf.Tensor:
  """A random-region mask float32 ``[size, size, 1]`` (1 = removed), stateless in ``seed``.

  Each candidate: uniform noise on a grid of ``ceil(size * res) + 4`` cells per side, resized
  bicubically by ``1 / res`` (the official 600 -> 10,000 pattern), a random ``size`` window of
  its interior, ``< density``. The first candidate whose removed fraction lies strictly inside
  ``area`` is returned (the official acceptance test), else the one nearest its middle.
  """
  cells = int(math.ceil(size * res)) + 4
  big = int(round(cells / res))
  s_noise, s_pos = _ops.split_seed(seed, 2)
  noise = tf.random.stateless_uniform([tries, cells, cells, 1], seed=s_noise)
  pattern = tf.image.resize(noise, [big, big], method="bicubic")
  margin = int(round(2 / res))  # two cells of bicubic boundary effects on each side
  span = max(1, big - 2 * margin - size)
  offsets = tf.random.stateless_uniform([tries, 2], seed=s_pos, maxval=span, dtype=tf.int32) + margin
  windows = tf.map_fn(lambda a: tf.slice(a[0], tf.concat([a[1], [0]], 0), [size, size, 1]),
                      (pattern, offsets), fn_output_signature=tf.float32)
  masks = tf.cast(windows < density, tf.float32)
  frac = tf.reduce_mean(masks, axis=[1, 2, 3])
  ok = (frac > area[0]) & (frac < area[1])
  nearest = tf.argmin(tf.abs(frac - 0.5 * (area[0] + area[1])))
  pick = tf.where(tf.reduce_any(ok), tf.argmax(tf.cast(ok, tf.int32)), nearest)
  return tf.ensure_shape(tf.gather(masks, pick), [size, size, 1])
