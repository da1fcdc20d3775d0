"""Colorization (Zhang, Isola & Efros, ECCV 2016, "Colorful Image Colorization").

The network sees only the lightness of an image (CIE Lab L - 50, one channel) and classifies,
at a quarter of the input resolution, each pixel's ab colour among the in-gamut bins of a
10-unit ab grid (`gamut_bins`: regenerated from the sRGB gamut, 261 bins; the official
`pts_in_hull.npy` has 313). Targets are soft-encoded on the 5 nearest bins (sigma 5) and the
per-pixel cross-entropy is re-weighted by the rarity of the colour (lambda 0.5 of the training
set's prior, smoothed by a Gaussian of sigma 5 in ab); grey images carry no loss
(`losses.colorization_loss`). The colour prior is a dataset statistic: `prepare_source`
estimates it from (up to `prior_images` evenly spaced) training images at the loss's
resolution, and it is kept in the method state, so a restored checkpoint has its run's prior.

Network: the trunk's last feature map, bilinearly resized to the quarter-resolution grid, a
3x3 convolution with BatchNorm and ReLU, and a 1x1 convolution to the bins. The paper's network
is a VGG-style stack with dilated convolutions (output stride 8, a deconvolution to stride 4);
here the trunk is any of the library's backbones (a ResNet in the configs) so that it is
evaluated like every other method; the decoder is the part that is not the paper's.

Evaluation feeds the trunk L only (`eval_preprocess`); the report adds, on every network row,
the held-out rebalanced cross-entropy ("color_ce") next to that of predicting the colour prior
for every pixel ("prior_ce", the trivial baseline of the same weights). `write_artifacts`
draws held-out images as (L only, colourized by the annealed mean at T = 0.38, original).
"""

from __future__ import annotations

import functools
import os
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import data, losses
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature, square_view
from jax_ssl.methods.mae import reconstruction_grid


@functools.lru_cache(maxsize=4)
def gamut_bins(grid: int = 10) -> np.ndarray:
  """The ab bins [Q, 2] of a `grid`-unit ab grid that some 8-bit sRGB colour falls in (its ab
  rounded to the nearest multiple of `grid`), sorted by (a, b).

  The ab footprint of the RGB cube is that of its surface (every line through the solid cube
  meets its boundary), so the 6 x 256^2 colours of the cube's faces are converted to Lab
  (`ops.rgb_to_lab`) instead of all 2^24 (the same 261 bins, measured). With grid 10 this gives
  261 bins (a in [-90, 100], b in [-110, 90]); the official ``pts_in_hull.npy`` holds 313 and
  its construction is not published (bins within 10 ab units of an sRGB colour would be 290).
  """
  levels = np.arange(256, dtype=np.float32) / 255.0
  u, v = (x.reshape(-1) for x in np.meshgrid(levels, levels, indexing="ij"))
  faces = []
  for axis in range(3):
    for value in (0.0, 1.0):
      cols = [u, v]
      cols.insert(axis, np.full_like(u, value))
      faces.append(np.stack(cols, -1))
  ab = ops.rgb_to_lab(tf.constant(np.concatenate(faces))).numpy()[:, 1:]
  q = np.unique(np.round(ab / grid).astype(np.int64), axis=0)  # sorted rows (a, b)
  return (q * grid).astype(np.float32)


def smooth_prior(counts: np.ndarray, bins: np.ndarray, *, sigma: float = 5.0) -> np.ndarray:
  """Empirical bin frequencies smoothed by a Gaussian of `sigma` in ab (Zhang et al. Sec. 2.2):
  each bin's mass spread over the bins with weights exp(-d^2 / 2 sigma^2) (mass-preserving),
  normalized to sum 1. float64 [Q]."""
  counts = np.asarray(counts, np.float64)
  d2 = np.sum((bins[:, None, :].astype(np.float64) - bins[None, :, :]) ** 2, axis=-1)
  kernel = np.exp(-d2 / (2.0 * sigma ** 2))
  kernel /= kernel.sum(axis=1, keepdims=True)
  p = (counts / counts.sum()) @ kernel
  return p / p.sum()


def _color_decoder(fmap, out_hw, *, width: int, num_bins: int, train: bool):
  """The colour decoder's layers, created in the calling module's scope (call from a compact
  method): `fmap` bilinearly resized to `out_hw`, 3x3 conv + BN + ReLU, 1x1 conv to the bins."""
  y = jax.image.resize(fmap, (fmap.shape[0],) + tuple(out_hw) + (fmap.shape[-1],), "bilinear")
  y = nn.Conv(width, (3, 3), padding=1, use_bias=False, name="decoder_conv")(y)
  y = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, name="decoder_bn")(y))
  return nn.Conv(num_bins, (1, 1), name="bins")(y).astype(jnp.float32)


class ColorHead(nn.Module):
  """Colorization's decoder on a given feature map [N, h, w, C] -> bin logits [N, *out_hw, Q]
  (Damaged Jigsaw's colour head on the per-tile maps of its trunk)."""

  num_bins: int
  out_hw: tuple
  width: int = 128

  @nn.compact
  def __call__(self, fmap, *, train: bool):
    return _color_decoder(fmap, self.out_hw, width=self.width, num_bins=self.num_bins, train=train)


def annealed_rgb(lightness: np.ndarray, logits, bins, *, temperature: float) -> tuple[np.ndarray, np.ndarray]:
  """L [N, S, S, 1] (0..100) and bin logits [N, h, w, Q] -> (L alone as RGB, L with the annealed
  mean ab at `temperature` upsampled bilinearly to S), both [N, S, S, 3] in [0, 1] (skimage's Lab -> RGB)."""
  from skimage import color  # pylint: disable=g-import-not-at-top  (Lab -> RGB only)

  lightness = np.asarray(lightness, np.float64)
  ab = losses.colorization_annealed_mean(logits, jnp.asarray(bins), temperature=temperature)
  ab = np.asarray(jax.image.resize(ab, lightness.shape[:3] + (2,), "bilinear"), np.float64)
  with warnings.catch_warnings():  # predicted colours outside the sRGB gamut are clipped, as intended
    warnings.simplefilter("ignore", UserWarning)
    return (np.clip(color.lab2rgb(np.concatenate([lightness, np.zeros_like(ab)], -1)), 0, 1).astype(np.float32),
            np.clip(color.lab2rgb(np.concatenate([lightness, ab], -1)), 0, 1).astype(np.float32))


class ColorizationNet(nn.Module):
  """Trunk feature map -> per-pixel bin logits at 1/`stride` of the input resolution."""

  backbone: nn.Module
  num_bins: int
  width: int = 128
  stride: int = 4

  @nn.compact
  def __call__(self, x, *, train: bool):
    fmap = self.backbone(x, train=train, return_map=True)
    out_hw = (x.shape[1] // self.stride, x.shape[2] // self.stride)
    return _color_decoder(fmap, out_hw, width=self.width, num_bins=self.num_bins, train=train)

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


class Colorization(Method):
  """Colorization as classification over quantized ab (Zhang et al. 2016).

  Args:
    backbone: Flax trunk taking [N, H, W, 1] (`train=`, `return_map=`, `return_blocks=` as
      `models.ResNet`).
    image_size: side of the training crops (photos: shorter side resized to
      `image_size / eval_crop_fraction`, random crop; CIFAR-size images pass unchanged).
    grid: ab quantization step (10: 261 bins). num_neighbors, sigma: soft encoding (5, 5).
    lam: class-rebalancing mix (0.5). prior_sigma: Gaussian smoothing of the prior (5).
    prior_images: at most this many training images (evenly spaced) estimate the prior;
      sources of fewer than `min_prior_images` (the two-example batches that build a network)
      leave the prior as it is (uniform until estimated, or restored by `jax_ssl.load`).
    gray_threshold: an image whose target ab never exceeds this is grey (no loss).
    decoder_width: channels of the decoder's 3x3 convolution. flip_p: horizontal flips.
    eval_crop_fraction: centre-crop fraction of the evaluation view.
    temperature: annealed-mean temperature of the pictures (0.38).
    trunk_input: "l": the trunk sees L - 50, one channel (the paper); "gray": the achromatic
      sRGB image of the same lightness (`ops.lightness_to_gray`), normalized by `mean` / `std`,
      three channels, so that the trunk can be shared with RGB tasks (`MultiTask`: Doersch &
      Zisserman 2017 train colorization on one trunk with RGB tasks). Either way no colour reaches it.
    mean, std: the "gray" input's normalization; unused for "l".

  Batch: "l" [B, S, S, 1] (the trunk's input: L - 50, or [B, S, S, 3] for "gray"), "ab"
  [B, S/4, S/4, 2] (every 4th pixel, as the official code).
  """

  name = "colorization"
  stride = 4

  @property
  def input_description(self):
    return ("CIE L - 50 of the RGB image: [N, H, W, 1]" if self.trunk_input == "l" else
            "the grey image of CIE L, normalized with data.mean / data.std: [N, H, W, 3]")

  def __init__(self, *, backbone: nn.Module, image_size: int, grid: int = 10, num_neighbors: int = 5,
               sigma: float = 5.0, lam: float = 0.5, prior_sigma: float = 5.0, prior_images: int = 10000,
               min_prior_images: int = 16, gray_threshold: float = 5.0, decoder_width: int = 128,
               flip_p: float = 0.5, eval_crop_fraction: float = 0.875, temperature: float = 0.38,
               trunk_input: str = "l", mean=None, std=None):
    if trunk_input not in ("l", "gray"):
      raise ValueError(f"trunk_input must be 'l' or 'gray', got {trunk_input!r}")
    if trunk_input == "gray" and (mean is None or std is None):
      raise ValueError("trunk_input='gray' needs the RGB normalization (mean, std)")
    self.trunk_input = trunk_input
    self.gray_normalize = Normalizer(mean, std) if trunk_input == "gray" else None
    if image_size % self.stride:
      raise ValueError(f"image_size {image_size} is not a multiple of {self.stride} (the target grid)")
    self.bins = gamut_bins(grid)
    self.model = ColorizationNet(backbone, num_bins=len(self.bins), width=decoder_width, stride=self.stride)
    self.image_size, self.grid = image_size, grid
    self.num_neighbors, self.sigma, self.lam, self.prior_sigma = num_neighbors, sigma, lam, prior_sigma
    self.prior_images, self.min_prior_images = prior_images, min_prior_images
    self.gray_threshold, self.flip_p = gray_threshold, flip_p
    self.eval_crop_fraction, self.temperature = eval_crop_fraction, temperature
    self.prior = None  # [Q] float64, from `prepare_source`

  # -- data
  def trunk_view(self, lightness):
    """TensorFlow: L [..., 1] (0..100) -> the trunk's input (L - 50, or the normalized grey RGB)."""
    if self.trunk_input == "l":
      return lightness - 50.0
    return self.gray_normalize(ops.lightness_to_gray(lightness))

  def _lab_views(self, rgb):
    lab = ops.rgb_to_lab(rgb)
    return {"l": self.trunk_view(lab[..., :1]), "ab": lab[::self.stride, ::self.stride, 1:]}

  def make_views(self, example, seed):
    s_crop, s_flip = ops.split_seed(seed, 2)
    img = square_view(ops.to_float(example["image"]), s_crop, size=self.image_size,
                      crop_fraction=self.eval_crop_fraction)
    return self._lab_views(ops.random_flip(img, s_flip, self.flip_p))

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  def eval_preprocess(self, image):
    """The trunk's input of the evaluation view: L - 50 [S, S, 1] (or the normalized grey [S, S, 3])."""
    return self._lab_views(self.eval_view(image))["l"]

  def prepare_source(self, source):
    if self.prior is None and len(source) >= self.min_prior_images:
      self.prior = self.estimate_prior(source)
    return source

  def estimate_prior(self, source) -> np.ndarray:
    """The smoothed colour prior [Q] of (up to `prior_images` evenly spaced) images of `source`:
    nearest-bin counts of the target-resolution ab of their evaluation views, grey images left
    out (they carry no loss), smoothed by `prior_sigma` (`smooth_prior`)."""
    n = min(self.prior_images, len(source))
    idx = np.unique(np.linspace(0, len(source) - 1, n).round().astype(np.int64))
    sub = data.take_examples(source, idx, f"{source.name}[{len(idx)} for the colour prior]")
    ds, _ = data.eval_dataset(sub, lambda im: self._lab_views(self.eval_view(im))["ab"], batch_size=256)
    counts = np.zeros(len(self.bins), np.float64)
    bins = self.bins.astype(np.float64)
    for batch in ds.as_numpy_iterator():
      ab = batch["image"][batch["mask"]].astype(np.float64)
      ab = ab[np.any(np.abs(ab) > self.gray_threshold, axis=(1, 2, 3))].reshape(-1, 2)
      for chunk in np.array_split(ab, max(1, len(ab) // 65536)):  # bounded [chunk, Q] distances
        nearest = np.argmin(np.sum((chunk[:, None, :] - bins[None]) ** 2, axis=-1), axis=1)
        counts += np.bincount(nearest, minlength=len(bins))
    if counts.sum() == 0:
      raise data.DataError(f"no colour images in {source.name} to estimate the colour prior from")
    return smooth_prior(counts, self.bins, sigma=self.prior_sigma)

  def restored(self, params, state):
    """A restored checkpoint's colour prior becomes the method's (random-init baselines use it)."""
    del params
    self.prior = np.asarray(state["prior"], np.float64)

  # -- model
  def init(self, rng, batch):
    variables = self.model.init(rng, jnp.asarray(batch["l"]), train=True)
    prior = np.full(len(self.bins), 1.0 / len(self.bins)) if self.prior is None else self.prior
    return variables["params"], {
        "batch_stats": variables["batch_stats"],
        "prior": jnp.asarray(prior, jnp.float32),
        "class_weights": jnp.asarray(losses.colorization_rebalance_weights(prior, lam=self.lam), jnp.float32)}

  def _loss(self, logits, ab, class_weights):
    return losses.colorization_loss(logits, ab, jnp.asarray(self.bins), class_weights,
                                    num_neighbors=self.num_neighbors, sigma=self.sigma,
                                    gray_threshold=self.gray_threshold)

  def loss(self, params, state, batch, rng, step):
    del rng, step
    logits, updates = self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, batch["l"],
                                       train=True, mutable=["batch_stats"])
    loss = self._loss(logits, batch["ab"], state["class_weights"])
    nearest = jnp.argmin(jnp.sum((batch["ab"][..., None, :] - jnp.asarray(self.bins)) ** 2, -1), -1)
    metrics = {"bin_acc": jnp.mean(jnp.argmax(logits, -1) == nearest)}
    return loss, ({**state, "batch_stats": updates["batch_stats"]}, metrics)

  def bin_logits(self, params, state, images):
    """Inference-mode bin logits [N, S/4, S/4, Q] of L - 50 images [N, S, S, 1]."""
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images, train=False)

  def heldout_terms(self, params, state, batch):
    """Sums and counts (over pixels) of the rebalanced cross-entropy of the network ("color_ce")
    and of predicting the colour prior at every pixel ("prior_ce") on a `make_views` batch."""
    logits = self.bin_logits(params, state, batch["l"])
    prior_logits = jnp.broadcast_to(jnp.log(jnp.maximum(state["prior"], 1e-12)), logits.shape)
    count = jnp.asarray(np.prod(logits.shape[:3]), jnp.float32)
    return {"color_ce": jnp.stack([self._loss(logits, batch["ab"], state["class_weights"]) * count, count]),
            "prior_ce": jnp.stack([self._loss(prior_logits, batch["ab"], state["class_weights"]) * count, count])}

  def embed(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=ColorizationNet.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=ColorizationNet.block_features)

  def colorize(self, params, state, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB images [N, S, S, 3] in [0, 1] -> (their L alone as RGB, colourized by the annealed
    mean at `temperature` with the ab upsampled bilinearly), both [N, S, S, 3] in [0, 1]."""
    lab = ops.rgb_to_lab(tf.constant(rgb, tf.float32)).numpy().astype(np.float64)  # the trunk's own conversion
    trunk_in = self.trunk_view(tf.constant(lab[..., :1], tf.float32)).numpy()
    logits = jax.jit(self.bin_logits)(params, state, trunk_in)
    return annealed_rgb(lab[..., :1], logits, self.bins, temperature=self.temperature)

  def write_artifacts(self, workdir, *, params, state, source, heldout=None):
    """colorizations.png: (L only, colourized, original) for 8 held-out images."""
    src = heldout if heldout is not None else source
    path = os.path.join(workdir, "colorizations.png")

    def panels(rgb):
      gray, coloured = self.colorize(params, state, rgb)
      return gray, coloured, rgb

    return [reconstruction_grid(src, panels, self.eval_view, path,
                                title=f"Colorization T={self.temperature}", columns="L | colourized | original")]

  def signature(self):
    out = {"method": self.name, "model": module_signature(self.model), "grid": self.grid}
    return {**out, "trunk_input": self.trunk_input} if self.trunk_input != "l" else out
