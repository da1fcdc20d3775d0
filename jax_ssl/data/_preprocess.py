"""Deterministic (augmentation-free) preprocessing for evaluation."""

from __future__ import annotations

import tensorflow as tf


def center_view(image, *, size: int, crop_fraction: float = 0.875):
  """uint8 [H, W, 3] -> float32 [size, size, 3] in [0, 1]: the standard evaluation view.

  Images already `size` x `size` pass through untouched (CIFAR). Otherwise the shorter side
  is resized to `size / crop_fraction` (256 for 224 at 0.875, the ImageNet convention) and
  the central `size` x `size` crop is taken.
  """
  image = tf.convert_to_tensor(image)
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  img = tf.image.convert_image_dtype(image, tf.float32)

  def resize_crop():
    short = tf.cast(tf.minimum(h, w), tf.float32)
    scale = (size / crop_fraction) / short
    nh = tf.maximum(size, tf.cast(tf.round(tf.cast(h, tf.float32) * scale), tf.int32))
    nw = tf.maximum(size, tf.cast(tf.round(tf.cast(w, tf.float32) * scale), tf.int32))
    r = tf.image.resize(img, [nh, nw], method="bilinear", antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return tf.clip_by_value(r[top:top + size, left:left + size, :], 0.0, 1.0)

  out = tf.cond(tf.logical_and(tf.equal(h, size), tf.equal(w, size)), lambda: img, resize_crop)
  return tf.ensure_shape(out, [size, size, 3])
