"""Pieces shared by methods: backbone+head modules, view normalization, model signatures."""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import data
from jax_ssl.data import center_view


class BackboneWithHead(nn.Module):
  """backbone(x) -> features f [N, F]; head(f) -> z. Returns (f, z)."""

  backbone: nn.Module
  head: nn.Module

  def __call__(self, x, *, train: bool):
    f = self.backbone(x, train=train)
    return f, self.head(f, train=train)

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


def module_signature(module: nn.Module) -> dict:
  """The hyperparameters that define a module's parameter shapes (JSON-friendly)."""
  out = {"class": type(module).__name__}
  fields = getattr(module, "__dataclass_fields__", {})
  for field in fields:
    if field in ("parent", "name", "bn_axis_name", "dtype"):
      continue
    value = getattr(module, field)
    if fields[field].metadata.get("signature_omit_default") and value == fields[field].default:
      continue  # a field added later: older checkpoints (without it) still match at its default
    if isinstance(value, nn.Module):
      out[field] = module_signature(value)
    elif isinstance(value, (int, float, str, bool, type(None))):
      out[field] = value
    elif isinstance(value, (tuple, list)) and all(isinstance(v, (int, float, str)) for v in value):
      out[field] = list(value)
  return out


class Normalizer:
  """Per-channel mean/std normalization of float views in [0, 1] (TensorFlow side)."""

  def __init__(self, mean: Sequence[float], std: Sequence[float]):
    self.mean = tf.constant(mean, tf.float32)
    self.std = tf.constant(std, tf.float32)

  def __call__(self, image):
    return (image - self.mean) / self.std


def square_view(img, seed, *, size: int, crop_fraction: float):
  """A random `size` x `size` crop of a photo after resizing its shorter side to
  `size / crop_fraction` (the training twin of the evaluation's centre crop); images already
  `size` x `size` (CIFAR) pass unchanged. float [H, W, 3] in [0, 1] -> [size, size, 3]."""
  if img.shape[0] == size and img.shape[1] == size:
    return img
  shape = tf.shape(img)

  def crop():
    short = tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
    scale = (size / crop_fraction) / short
    nh = tf.maximum(size, tf.cast(tf.round(tf.cast(shape[0], tf.float32) * scale), tf.int32))
    nw = tf.maximum(size, tf.cast(tf.round(tf.cast(shape[1], tf.float32) * scale), tf.int32))
    out = tf.image.resize(img, [nh, nw], antialias=True)
    return tf.clip_by_value(tf.image.stateless_random_crop(out, [size, size, 3], seed=seed), 0.0, 1.0)

  img = tf.cond(tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size)), lambda: img, crop)
  return tf.ensure_shape(img, [size, size, 3])


def eval_input(image, *, size: int, normalize: Normalizer | None, crop_fraction: float):
  """The evaluation view (centre crop, no augmentation), normalized unless `normalize` is None."""
  view = center_view(image, size=size, crop_fraction=crop_fraction)
  return view if normalize is None else normalize(view)


def save_image_grid(panels, path: str, *, min_side: int = 48, pad: int = 2, title: str = "") -> str:
  """Saves images [R, C, H, W, 3] in [0, 1] as one PNG grid (R rows, C columns) and returns `path`.

  Small images are enlarged (nearest) to at least `min_side` pixels so that their pixels stay
  visible; `title` is written in a strip above the grid.
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top

  panels = np.asarray(panels, np.float32)
  rows, cols, side = panels.shape[0], panels.shape[1], panels.shape[2]
  zoom = max(1, int(np.ceil(min_side / side)))
  head = 16 if title else 0
  cell = side * zoom + pad
  canvas = np.ones((head + rows * cell + pad, cols * cell + pad, 3), np.float32)
  for r in range(rows):
    for c in range(cols):
      top, left = head + pad + r * cell, pad + c * cell
      canvas[top:top + side * zoom, left:left + side * zoom] = np.repeat(np.repeat(panels[r, c], zoom, 0), zoom, 1)
  out = Image.fromarray((np.clip(canvas, 0, 1) * 255).round().astype(np.uint8))
  if title:
    ImageDraw.Draw(out).text((pad, 2), title, fill=(0, 0, 0))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  out.save(path)
  return path


def split_views(z, n: int):
  """Inverse of concatenating n views along the batch axis: [n*B, ...] -> n arrays [B, ...]."""
  return jnp.split(z, n, axis=0)




def with_dataset_extras(method, source, state):
  """`source` with the per-example arrays of `method.dataset_extras(state, N)` (placeholders
  when `state` is None) added to its extras; `source` itself for methods without a dataset pass."""
  extras = method.dataset_extras(state, len(source)) if method.dataset_pass_every else {}
  return dataclasses.replace(source, extras={**source.extras, **extras}) if extras else source


def example_batch(method, source) -> dict:
  """A tiny training batch (two examples through `method.make_views`) to initialize a network.

  Used to restore a checkpoint (the target's shapes) or to build a random-init baseline.
  Only the first two examples go through `method.prepare_source` (DetCon's FH masks of two
  images, not of the whole split); methods with dataset-level state get the placeholder extras
  of `dataset_extras(None, 2)`.
  """
  head = method.prepare_source(data.take_examples(source, np.arange(min(2, len(source))), f"{source.name}[:2]"))
  ds = data.train_dataset(with_dataset_extras(method, head, None), method.make_views, global_batch=2, seed=0,
                          partner_key=method.partner_key)
  return jax.tree.map(np.asarray, next(ds.take(1).as_numpy_iterator()))


def batch_spec(batch) -> dict:
  """JSON-able per-example shapes and dtypes of a batch (nested dicts of [B, ...] arrays).

  Stored with every checkpoint (`meta["init"]["batch"]`) so that `zeros_batch` can rebuild a
  batch of the same structure, and `init` the network, without the training data.
  """
  if isinstance(batch, dict):
    return {k: batch_spec(v) for k, v in batch.items()}
  a = np.asarray(batch)
  return {"shape": list(a.shape[1:]), "dtype": a.dtype.name}


def zeros_batch(spec: dict, n: int = 2) -> dict:
  """A batch of `n` all-zero examples with the structure of `batch_spec`'s output."""
  if set(spec) == {"shape", "dtype"} and isinstance(spec["dtype"], str):
    return np.zeros([n] + list(spec["shape"]), np.dtype(spec["dtype"]))
  return {k: zeros_batch(v, n) for k, v in spec.items()}
