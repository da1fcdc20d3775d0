"""RandAugment-style strong augmentation with Pillow's pixel semantics, and Cutout.

SCAN's "strong" view (Van Gansbeke et al. 2020, the official ``augmentation_strategy: ours``):
``num_ops`` operations drawn with replacement from :data:`STRONG_OPS`, each at a magnitude
uniform in its range (geometric ones mirrored with probability 0.5), then normalization and
:func:`cutout`. The official code applies the operations with Pillow to uint8 images; here each
is a TensorFlow function of an image holding uint8 values (float32 ``[H, W, 3]`` in 0..255,
every output re-quantized as Pillow's is), checked against Pillow in the tests:

* lookup-table ops (autocontrast, equalize, posterize, solarize) and the blends (colour,
  contrast, brightness: ``trunc(degenerate + v * (image - degenerate))``) are exact;
* affine ops (rotate, shear, translate: nearest neighbour, black fill) sample the source pixel
  ``trunc(A (x + 0.5, y + 0.5))``, Pillow's rule; Pillow evaluates it in 16.16 fixed point, so a
  source coordinate within about 2^-16 of a pixel border can land on the neighbouring pixel;
* sharpness blends with Pillow's SMOOTH filter (3 x 3, centre weight 5, total 13; border pixels
  unfiltered), rounded to nearest; Pillow's fixed-point filter can differ by one grey level.

The 14 operations and ranges are SCAN's (``data/augment.py``); unlike the RandAugment paper
there is no global magnitude: each op draws its own.
"""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from jax_ssl.data.ops._base import split_seed


def _u(seed, lo=0.0, hi=1.0):
  return tf.random.stateless_uniform((), seed=seed, minval=lo, maxval=hi, dtype=tf.float32)


def _luma(image):
  """Pillow's RGB -> L: (19595 R + 38470 G + 7471 B + 2^15) >> 16, on integer values."""
  rgb = tf.cast(image, tf.int32)
  l = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) // 65536
  return tf.cast(l, tf.float32)


def _blend(degenerate, image, factor):
  """Pillow's ``Image.blend(degenerate, image, factor)`` for 0 <= factor <= 1 (truncation);
  outside that range the result is clipped to 0..255 first (Pillow's extrapolation branch)."""
  out = degenerate + tf.cast(factor, tf.float32) * (image - degenerate)
  return tf.floor(tf.clip_by_value(out, 0.0, 255.0))


def _per_channel_lut(image, lut):
  """``lut [3, 256]`` applied to each channel of integer-valued `image`."""
  idx = tf.cast(image, tf.int32)
  chans = [tf.gather(lut[c], idx[..., c]) for c in range(3)]
  return tf.cast(tf.stack(chans, axis=-1), tf.float32)


def identity(image, v=None):
  del v
  return image


def autocontrast(image, v=None):
  """``ImageOps.autocontrast`` (cutoff 0): each channel stretched from [min, max] to [0, 255]
  (``lut[i] = trunc(i * 255 / (max - min) - min * 255 / (max - min))``); flat channels unchanged."""
  del v
  x = tf.cast(image, tf.float64)  # Pillow computes the table in double precision
  lo = tf.reduce_min(x, axis=[0, 1])
  hi = tf.reduce_max(x, axis=[0, 1])
  scale = 255.0 / tf.maximum(hi - lo, 1.0)
  out = tf.floor(tf.clip_by_value(x * scale + (-lo * scale), 0.0, 255.0))
  return tf.cast(tf.where(hi > lo, out, x), tf.float32)


def equalize(image, v=None):
  """``ImageOps.equalize``: per channel, ``step = (count - count of the last used level) // 255``
  (Pillow >= 10.3; older Pillow, as in SCAN's day, divided by 256),
  ``lut[i] = (step // 2 + #pixels below level i) // step`` (identity when step is 0)."""
  del v
  idx = tf.cast(image, tf.int32)
  luts = []
  for c in range(3):
    hist = tf.math.bincount(tf.reshape(idx[..., c], [-1]), minlength=256, maxlength=256)
    nonzero = tf.boolean_mask(hist, hist > 0)
    step = (tf.reduce_sum(hist) - nonzero[-1]) // 255
    below = tf.cumsum(hist, exclusive=True)
    lut = tf.minimum((step // 2 + below) // tf.maximum(step, 1), 255)
    luts.append(tf.where(step > 0, lut, tf.range(256)))
  return _per_channel_lut(image, tf.stack(luts))


def posterize(image, v):
  """``ImageOps.posterize(image, int(v))``: keep the top ``int(v)`` bits."""
  bits = tf.cast(v, tf.int32)
  mask = 255 - (tf.bitwise.left_shift(1, 8 - bits) - 1)
  return tf.cast(tf.bitwise.bitwise_and(tf.cast(image, tf.int32), mask), tf.float32)


def solarize(image, v):
  """``ImageOps.solarize(image, v)``: levels at or above ``v`` inverted."""
  return tf.where(image < tf.cast(v, tf.float32), image, 255.0 - image)


def color(image, v):
  """``ImageEnhance.Color(image).enhance(v)``: blend with the grey (L) image."""
  gray = _luma(image)[..., None] * tf.ones_like(image)
  return _blend(gray, image, v)


def contrast(image, v):
  """``ImageEnhance.Contrast(image).enhance(v)``: blend with the rounded mean grey level."""
  mean = tf.floor(tf.reduce_mean(_luma(image)) + 0.5)
  return _blend(mean * tf.ones_like(image), image, v)


def brightness(image, v):
  """``ImageEnhance.Brightness(image).enhance(v)``: blend with black."""
  return _blend(tf.zeros_like(image), image, v)


def sharpness(image, v):
  """``ImageEnhance.Sharpness(image).enhance(v)``: blend with ``ImageFilter.SMOOTH`` (3 x 3,
  weights 1 around 5, over 13, rounded; the one-pixel border keeps its values)."""
  k = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
  kernel = tf.tile(k[:, :, None, None], [1, 1, 3, 1])
  smooth = tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "VALID")[0]
  smooth = tf.clip_by_value(tf.floor(smooth + 0.5), 0.0, 255.0)
  smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  inner = tf.pad(tf.ones([h - 2, w - 2, 1], tf.bool), [[1, 1], [1, 1], [0, 0]])
  return _blend(tf.where(inner, smooth, image), image, v)


def affine_nearest(image, matrix):
  """Pillow's ``image.transform(size, AFFINE, matrix, NEAREST)``: output pixel (x, y) takes the
  source pixel ``(trunc(a x' + b y' + c), trunc(d x' + e y' + f))`` at ``x' = x + 0.5``,
  ``y' = y + 0.5``; sources outside the image give black. `matrix`: 6 numbers (a..f)."""
  m = tf.cast(tf.convert_to_tensor(matrix), tf.float64)
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  ys, xs = tf.meshgrid(tf.cast(tf.range(h), tf.float64) + 0.5, tf.cast(tf.range(w), tf.float64) + 0.5, indexing="ij")
  u = m[0] * xs + m[1] * ys + m[2]
  v = m[3] * xs + m[4] * ys + m[5]
  inside = (u >= 0) & (v >= 0) & (u < tf.cast(w, tf.float64)) & (v < tf.cast(h, tf.float64))
  ui = tf.clip_by_value(tf.cast(u, tf.int32), 0, w - 1)  # trunc == floor where inside
  vi = tf.clip_by_value(tf.cast(v, tf.int32), 0, h - 1)
  out = tf.gather_nd(image, tf.stack([vi, ui], axis=-1))
  return tf.where(inside[..., None], out, tf.zeros_like(out))


def rotate(image, v):
  """``image.rotate(v)``: ``v`` degrees counter-clockwise about the centre, nearest, black fill."""
  h, w = tf.cast(tf.shape(image)[0], tf.float64), tf.cast(tf.shape(image)[1], tf.float64)
  a = -tf.cast(v, tf.float64) * math.pi / 180.0
  cos, sin = tf.cos(a), tf.sin(a)
  cx, cy = w / 2.0, h / 2.0
  # Pillow: the rotation about the origin, then its translation so the centre stays put.
  c = cos * -cx + sin * -cy + cx
  f = -sin * -cx + cos * -cy + cy
  return affine_nearest(image, tf.stack([cos, sin, c, -sin, cos, f]))


def shear_x(image, v):
  return affine_nearest(image, tf.stack([1.0, tf.cast(v, tf.float64), 0.0, 0.0, 1.0, 0.0]))


def shear_y(image, v):
  return affine_nearest(image, tf.stack([1.0, 0.0, 0.0, tf.cast(v, tf.float64), 1.0, 0.0]))


def translate_x(image, v):
  """Shift by ``v`` times the width (the source is ``x + v W``)."""
  dx = tf.cast(v, tf.float64) * tf.cast(tf.shape(image)[1], tf.float64)
  return affine_nearest(image, tf.stack([1.0, 0.0, dx, 0.0, 1.0, 0.0]))


def translate_y(image, v):
  dy = tf.cast(v, tf.float64) * tf.cast(tf.shape(image)[0], tf.float64)
  return affine_nearest(image, tf.stack([1.0, 0.0, 0.0, 0.0, 1.0, dy]))


# (name, op, low, high, mirrored): SCAN's list, in its order. Mirrored ops negate the drawn
# magnitude with probability 0.5 (the official ``random_mirror``).
STRONG_OPS = (
    ("identity", identity, 0.0, 1.0, False),
    ("autocontrast", autocontrast, 0.0, 1.0, False),
    ("equalize", equalize, 0.0, 1.0, False),
    ("rotate", rotate, -30.0, 30.0, True),
    ("solarize", solarize, 0.0, 256.0, False),
    ("color", color, 0.05, 0.95, False),
    ("contrast", contrast, 0.05, 0.95, False),
    ("brightness", brightness, 0.05, 0.95, False),
    ("sharpness", sharpness, 0.05, 0.95, False),
    ("shear_x", shear_x, -0.1, 0.1, True),
    ("translate_x", translate_x, -0.1, 0.1, True),
    ("translate_y", translate_y, -0.1, 0.1, True),
    ("posterize", posterize, 4.0, 8.0, False),
    ("shear_y", shear_y, -0.1, 0.1, True),
)


def apply_strong_op(image, index, magnitude):
  """Op ``index`` of :data:`STRONG_OPS` at ``magnitude`` (already mirrored) on a uint8-valued image."""
  branches = [lambda op=op: op(image, magnitude) for _, op, _, _, _ in STRONG_OPS]
  out = tf.switch_case(tf.cast(index, tf.int32), branches)
  return tf.ensure_shape(out, image.shape)


def rand_augment(image, seed, *, num_ops: int = 4) -> tf.Tensor:
  """SCAN's ``Augment(num_ops)``: ``num_ops`` ops of :data:`STRONG_OPS` drawn uniformly with
  replacement, each at a magnitude uniform in its range, mirrored ops negated with p = 0.5.

  `image`: uint8 ``[H, W, 3]`` (or float holding 0..255); returns float32 holding 0..255
  integers (divide by 255 for the library's [0, 1] convention).
  """
  img = tf.cast(image, tf.float32)
  lows = tf.constant([lo for _, _, lo, _, _ in STRONG_OPS], tf.float32)
  highs = tf.constant([hi for _, _, _, hi, _ in STRONG_OPS], tf.float32)
  mirrored = tf.constant([m for *_, m in STRONG_OPS])
  for s in split_seed(seed, num_ops) if num_ops else []:
    s_op, s_mag, s_sign = split_seed(s, 3)
    i = tf.random.stateless_uniform((), seed=s_op, minval=0, maxval=len(STRONG_OPS), dtype=tf.int32)
    mag = lows[i] + _u(s_mag) * (highs[i] - lows[i])
    mag = tf.where(mirrored[i] & (_u(s_sign) < 0.5), -mag, mag)
    img = apply_strong_op(img, i, mag)
  return img


def cutout(image, seed, *, max_length: int, fill: float = 0.0) -> tf.Tensor:
  """SCAN's ``Cutout(n_holes=1, length=max_length, random=True)`` on a normalized image: a side
  ``L`` uniform in 1..max_length, a centre (y, x) uniform over the pixels, and the rows
  ``clip(y - L // 2, y + L // 2)`` by the columns ``clip(x - L // 2, x + L // 2)`` set to `fill`
  (0: the official multiplies the normalized tensor by the mask, i.e. the mean colour)."""
  if max_length < 1:
    return image
  s_len, s_y, s_x = split_seed(seed, 3)
  h, w = tf.shape(image)[0], tf.shape(image)[1]
  half = tf.random.stateless_uniform((), seed=s_len, minval=1, maxval=max_length + 1, dtype=tf.int32) // 2
  y = tf.random.stateless_uniform((), seed=s_y, minval=0, maxval=h, dtype=tf.int32)
  x = tf.random.stateless_uniform((), seed=s_x, minval=0, maxval=w, dtype=tf.int32)
  rows, cols = tf.range(h), tf.range(w)
  in_rows = (rows >= tf.maximum(y - half, 0)) & (rows < tf.minimum(y + half, h))
  in_cols = (cols >= tf.maximum(x - half, 0)) & (cols < tf.minimum(x + half, w))
  hole = in_rows[:, None] & in_cols[None, :]
  return tf.where(hole[..., None], tf.cast(fill, image.dtype), image)


def strong_view(image, seed, *, mean: Sequence[float], std: Sequence[float], num_ops: int = 4,
                cutout_length: int = 16, flip: bool = True) -> tf.Tensor:
  """SCAN's strong view of a uint8 image of the training size: horizontal flip, :func:`rand_augment`,
  normalization, :func:`cutout` (the official ``RandomHorizontalFlip, RandomCrop(size),
  Augment(4), ToTensor, Normalize, Cutout(1, 16, random=True)``; the crop is the identity on
  images of the crop size). Returns float32 ``[H, W, 3]``."""
  s_flip, s_aug, s_cut = split_seed(seed, 3)
  img = tf.cast(image, tf.float32)
  if flip:
    img = tf.cond(_u(s_flip) < 0.5, lambda: img[:, ::-1], lambda: img)
  img = rand_augment(img, s_aug, num_ops=num_ops) / 255.0
  img = (img - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
  return cutout(img, s_cut, max_length=cutout_length)
