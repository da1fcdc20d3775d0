"""Exemplar-CNN's seed patches (Dosovitskiy et al. 2014, Sec. 2.1): "N patches of size 32 x 32
from different images at varying positions and scales ... regions containing considerable
gradients", each kept with its surroundings for `ops.exemplar_transform`."""

from __future__ import annotations

import math

import numpy as np

from jax_ssl.data._sources import ArraySource, DataError


def _box_sums(a: np.ndarray, side: int) -> np.ndarray:
  """Sums of `a` [H, W] over every side x side window, [H - side + 1, W - side + 1] (top-left indexed)."""
  c = np.pad(np.cumsum(np.cumsum(a, 0), 1), ((1, 0), (1, 0)))
  return c[side:, side:] - c[:-side, side:] - c[side:, :-side] + c[:-side, :-side]


def exemplar_seeds(source: ArraySource, num: int, *, patch: int, max_region: float = 0.5, seed: int = 0,
                   one_per_image: bool = False) -> ArraySource:
  """`num` seeds as a source of windows uint8 [num, 2 patch, 2 patch, 3], seed i of class i.

  Seed i comes from image ``order[i]`` (a random permutation: distinct images while `num` <=
  len(source), then again in a new order, at other positions). Its region side S is log-uniform
  in [patch, max(patch, max_region x the shorter side)] (the paper's "varying scales"), its
  position drawn with probability proportional to the region's summed squared gradient of the
  grey image (the "considerable gradients"); the window is the 2S x 2S square around the region
  (reflected at the image border), resized to 2 patch (area-averaging, antialiased). With
  `one_per_image`, seed i comes from image i (`num` must be ``len(source)``; sizes and positions
  drawn as above).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if num < 1:
    raise DataError(f"exemplar needs at least one seed, got num_seeds={num}")
  rng = np.random.default_rng(seed)
  n = len(source)
  if one_per_image:  # seed i from image i (Exemplar inside MultiTask: an example's index is its class)
    if num != n:
      raise DataError(f"one seed per image needs num_seeds equal to the {n} training images, got {num}")
    order = np.arange(n)
  else:
    order = np.concatenate([rng.permutation(n) for _ in range(math.ceil(num / n))])[:num]
  windows = np.empty((num, 2 * patch, 2 * patch, 3), np.uint8)
  for k, i in enumerate(order):
    img = np.asarray(source.image(int(i)))
    h, w = img.shape[:2]
    short = min(h, w)
    hi = max(patch, int(max_region * short))
    side = int(round(math.exp(rng.uniform(math.log(patch), math.log(hi))))) if hi > patch else patch
    side = min(side, short)
    grey = img.astype(np.float64).mean(-1)
    gy, gx = np.gradient(grey)
    score = _box_sums(gx ** 2 + gy ** 2, side).ravel() + 1e-6  # every region stays possible
    r, c = np.unravel_index(rng.choice(score.size, p=score / score.sum()), (h - side + 1, w - side + 1))
    pad = side  # the 2S window around the region, reflected beyond the image
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect" if min(h, w) > pad else "symmetric")
    top, left = r + pad - side // 2, c + pad - side // 2
    win = padded[top:top + 2 * side, left:left + 2 * side]
    if win.shape[0] != 2 * patch:
      win = np.asarray(Image.fromarray(win).resize((2 * patch, 2 * patch), Image.BOX))
    windows[k] = win
  return ArraySource(windows, np.arange(num, dtype=np.int32), [f"seed{i}" for i in range(num)],
                     f"{source.name}[{num} exemplar seeds of {patch} px]")
