"""Exemplar-CNN's surrogate classes (Dosovitskiy, Springenberg, Riedmiller & Brox, NIPS 2014).

A surrogate class is one seed patch under random transformations (paper Sec. 2.1):

* translation: vertical and horizontal shifts up to ``0.2`` of the patch size;
* scaling: the patch's scale multiplied by a factor in ``[0.7, 1.4]``;
* rotation: up to ``20`` degrees either way;
* contrast 1: each pixel's projections on the principal components of all seed pixels
  (`pixel_pca`) multiplied by factors in ``[0.5, 2]``, one per component and patch;
* contrast 2: saturation and value (HSV) raised to a power in ``[0.25, 4]`` (log-uniform here:
  the paper gives only the range), multiplied by a factor in ``[0.7, 1.4]``, plus ``[-0.1, 0.1]``;
  one draw each for S and V per patch;
* colour: ``[-0.1, 0.1]`` added to the hue.

The seed is kept with its surroundings (a window twice the patch's side, `exemplar_seeds`) so
that the geometric transformations sample real pixels; beyond the window they reflect.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from jax_ssl.data.ops._base import _uniform, split_seed  # pylint: disable=protected-access


def pixel_pca(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean [3], principal axes [3, 3] as columns) of all pixels of float images [..., 3] in [0, 1]."""
  x = np.asarray(images, np.float64).reshape(-1, 3)
  mean = x.mean(0)
  _, vecs = np.linalg.eigh(np.cov(x - mean, rowvar=False))
  return mean.astype(np.float32), vecs[:, ::-1].astype(np.float32)  # largest variance first


def _affine(seed, size: int, window: int, *, translation: float, scale, rotation: float):
  """ImageProjectiveTransformV3 parameters mapping output pixel (x, y) of a `size` patch to the
  window: centre + shift + s R(theta) (p - output centre)."""
  s_t, s_s, s_r = split_seed(seed, 3)
  t = _uniform(s_t, [2], -translation * size, translation * size)
  s = _uniform(s_s, (), scale[0], scale[1])
  th = _uniform(s_r, (), -math.radians(rotation), math.radians(rotation))
  co, cw = (size - 1) / 2.0, (window - 1) / 2.0
  cos, sin = s * tf.cos(th), s * tf.sin(th)
  return tf.stack([cos, -sin, cw + t[0] - (cos * co - sin * co), sin, cos, cw + t[1] - (sin * co + cos * co),
                   0.0, 0.0])


def exemplar_transform(window, seed, *, size: int, pca_mean, pca_axes, translation: float = 0.2,
                       scale=(0.7, 1.4), rotation: float = 20.0, pc_scale=(0.5, 2.0), sv_power=(0.25, 4.0),
                       sv_mult=(0.7, 1.4), sv_add=(-0.1, 0.1), hue: float = 0.1) -> tf.Tensor:
  """One random member of a seed's surrogate class: float window [W, W, 3] in [0, 1] (the seed
  patch at its centre, half its side) -> patch [size, size, 3] in [0, 1], stateless in `seed`."""
  s_geo, s_pc, s_pow, s_mult, s_add, s_hue = split_seed(seed, 6)
  w = int(window.shape[0])
  params = _affine(s_geo, size, w, translation=translation, scale=scale, rotation=rotation)
  patch = tf.raw_ops.ImageProjectiveTransformV3(
      images=window[None], transforms=params[None], output_shape=tf.constant([size, size]),
      fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")[0]
  # Contrast 1: scale the principal-component coordinates of every pixel.
  mean, axes = tf.constant(pca_mean, tf.float32), tf.constant(pca_axes, tf.float32)
  factors = _uniform(s_pc, [3], pc_scale[0], pc_scale[1])
  patch = tf.clip_by_value(((patch - mean) @ axes * factors) @ tf.transpose(axes) + mean, 0.0, 1.0)
  # Contrast 2 and colour, in HSV.
  hsv = tf.image.rgb_to_hsv(patch)
  power = tf.exp(_uniform(s_pow, [2], math.log(sv_power[0]), math.log(sv_power[1])))
  mult = _uniform(s_mult, [2], sv_mult[0], sv_mult[1])
  add = _uniform(s_add, [2], sv_add[0], sv_add[1])
  sv = tf.clip_by_value(tf.pow(hsv[..., 1:], power) * mult + add, 0.0, 1.0)
  h = tf.math.floormod(hsv[..., :1] + _uniform(s_hue, (), -hue, hue), 1.0)
  out = tf.image.hsv_to_rgb(tf.concat([h, sv], -1))
  return tf.ensure_shape(tf.clip_by_value(out, 0.0, 1.0), [size, size, 3])
