"""Context Encoders (Pathak, Krähenbühl, Donahue, Darrell & Efros, CVPR 2016): features by inpainting.

An encoder sees an image with a region removed (filled with the dataset mean) and a decoder
predicts the missing pixels; an adversarial discriminator judges the prediction. As the
official Torch code (pathak22/context-encoder ``train.lua`` / ``train_random.lua``):

* Centre masks (``mask="center"``): the central square of half the side is predicted; the input
  hole is ``overlap`` pixels smaller on each side (``overlapPred`` = 4 at 128 px), and the L2
  weight is ``band_weight`` = 10x on that overlap band (`data.ops.center_masks`). The
  discriminator sees only the centre (real or predicted).
* Random-region masks (``mask="random"``, `data.ops.random_region_mask`: the paper's Sec. 3.3
  masks, 20-30% of the image, one per example where the official code draws one per batch):
  the whole image is predicted, L2 weight 1 in the removed region and ``known_weight`` elsewhere
  (1: the official command's ``useOverlapPred=0``; its option 1 is 10), the discriminator sees
  whole images.
* Joint loss ``l2_weight * L2 + (1 - l2_weight) * adversarial`` with ``l2_weight`` = 0.999
  (`losses.inpainting_l2`, `losses.gan_generator_loss`); the discriminator's BCE on real vs
  predicted (`losses.gan_discriminator_loss`). One step updates the discriminator, then the
  generator (the official order), each with the run's optimizer (the paper's Adam 2e-4,
  beta1 0.5, in the configs); the generator's learning rate is 10x the discriminator's when both
  losses are on (``generator_lr_mult``: the official ``optimStateG``; the paper does not say so).
  ``l2_weight = 1``: no discriminator at all (the reconstruction-only Context Encoder).
* Images in [-1, 1] (the official ``mul(2):add(-1)``), the decoder ends in tanh.

Network: the encoder is any library backbone (the official ``netE`` is `models.DCGANEncoder`
with widths (64, 64, 128, 256, 512) at 128 px: `build_backbone("dcgan", ...)`); its last map,
flattened, goes to a ``bottleneck``-unit layer (the official 4x4 convolution to
``nBottleneck`` = 4000) with BatchNorm and LeakyReLU 0.2, and a `models.DCGANGenerator` decodes
it to the predicted region. The discriminator is `models.DCGANDiscriminator`. BatchNorm runs in
training mode in both phases, with separate statistics for real and predicted batches (as the
Torch code's two forward passes); running statistics are updated by the phase that trains the
network. Features for evaluation: the encoder on whole, unmasked images.

Held-out report (`heldout_terms`): the mean squared error over the removed pixels ("hole_mse",
pixels in [0, 1]) next to that of filling them with the mean ("mean_fill_mse"), on views made by
the training pipeline. `write_artifacts` draws held-out images as (input with the hole, the
prediction pasted into it, original).
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import losses, models
from jax_ssl.data import ops
from jax_ssl.methods._base import Method, Phase
from jax_ssl.methods._parts import Adversary, apply_bn, with_batch_stats
from jax_ssl.methods._common import eval_input, module_signature, square_view
from jax_ssl.methods.mae import reconstruction_grid

_INIT = nn.initializers.normal(0.02)


def _removed_sq_error(pred, target, removed):
  """[sum, count] of the squared error over the removed pixels' channels, pixels in [0, 1]
  (pred, target in [-1, 1]; removed [1 or B, h, w, 1])."""
  removed = jnp.broadcast_to(removed, target.shape[:3] + (1,))
  return jnp.stack([jnp.sum(removed * jnp.square((pred - target) / 2.0)), 3.0 * jnp.sum(removed)])


class ContextEncoderNet(nn.Module):
  """Encoder (a backbone's last map) -> bottleneck -> `DCGANGenerator` to `out_size` x `out_size`."""

  backbone: nn.Module
  out_size: int
  bottleneck: int = 4000
  width: int = 64

  @nn.compact
  def __call__(self, x, *, train: bool):
    fmap = self.backbone(x, train=train, return_map=True)
    z = nn.Dense(self.bottleneck, use_bias=False, kernel_init=_INIT, name="bottleneck")(fmap.reshape(len(x), -1))
    z = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name="bottleneck_bn")(z)
    z = nn.leaky_relu(z, 0.2)
    return models.DCGANGenerator(image_size=self.out_size, width=self.width, name="decoder")(z, train=train)

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


class ContextEncoder(Method):
  """Context Encoders (Pathak et al. 2016).

  Args:
    backbone: the encoder (a library backbone; `return_map=True` gives its last map).
    image_size: side of the training crops (photos: shorter side resized to
      `image_size / crop_fraction`, random crop, as the official ``loadSize`` 350 / ``fineSize``
      128; CIFAR-size images pass unchanged) and of the evaluation view.
    mask: "center" or "random". overlap: pixels of the centre the input keeps on each side (4).
    band_weight: L2 weight of the overlap band, relative to the hole (10). known_weight: random
      masks' L2 weight of the known pixels (1).
    l2_weight: the joint loss's L2 weight (0.999; 1: reconstruction only, no discriminator).
    generator_lr_mult: the generator's learning rate over the discriminator's; None: the
      official 10 when 0 < l2_weight < 1, else 1.
    bottleneck: units of the encoder's bottleneck (4000). decoder_width, disc_widths: the
      generator's base width (ngf) and the discriminator's layer widths (its input side halves
      per layer down to 4 x 4: (64, 128, 256, 512) for the official 64 px centre).
    crop_fraction / eval_crop_fraction: training and evaluation crop fractions of the shorter side.
    flip_p: horizontal flips (0.5, as the official loader).
    fill: the per-channel value in [0, 1] of the removed region; None: `mean`, the dataset's
      mean (the official code fills (117, 104, 123) / 255). std: accepted for the common
      constructor; unused.

  Batch: "image" [B, S, S, 3] in [-1, 1]; with random masks also "mask" [B, S, S, 1] (1 = removed).
  """

  name = "context_encoder"
  input_description = "RGB scaled to [-1, 1]: [N, H, W, 3]"

  def __init__(self, *, backbone: nn.Module, image_size: int, mask: str = "center", overlap: int = 4,
               band_weight: float = 10.0, known_weight: float = 1.0, l2_weight: float = 0.999,
               generator_lr_mult: float | None = None, bottleneck: int = 4000, decoder_width: int = 64,
               disc_widths=(64, 128, 256, 512), crop_fraction: float = 1.0, eval_crop_fraction: float = 0.875,
               flip_p: float = 0.5, fill=None, mean=(0.5, 0.5, 0.5), std=None):
    del std
    if mask not in ("center", "random"):
      raise ValueError(f"mask must be 'center' or 'random', got {mask!r}")
    if not 0.0 < l2_weight <= 1.0:
      raise ValueError(f"l2_weight must be in (0, 1], got {l2_weight}")
    self.image_size, self.mask, self.overlap = image_size, mask, overlap
    self.band_weight, self.known_weight, self.l2_weight = band_weight, known_weight, l2_weight
    self.adversarial = l2_weight < 1.0
    self.generator_lr_mult = (10.0 if self.adversarial else 1.0) if generator_lr_mult is None else float(generator_lr_mult)
    self.crop_fraction, self.eval_crop_fraction, self.flip_p = crop_fraction, eval_crop_fraction, flip_p
    self.fill = np.asarray(mean if fill is None else fill, np.float32) * 2.0 - 1.0  # in the network's [-1, 1]
    if mask == "center":
      self.start, self.side, _ = ops.center_region(image_size, overlap=overlap)
      self.hole, self.weights = ops.center_masks(image_size, overlap=overlap, band_weight=band_weight)
    else:
      self.start, self.side = 0, image_size
      self.hole = self.weights = None
    self.model = ContextEncoderNet(backbone, out_size=self.side, bottleneck=bottleneck, width=decoder_width)
    self.disc = models.DCGANDiscriminator(models.DCGANEncoder(widths=tuple(int(w) for w in disc_widths)))
    self.adversary = Adversary(self.disc)

  # -- data
  def _view(self, image, seed):
    s_crop, s_flip = ops.split_seed(seed, 2)
    img = square_view(ops.to_float(image), s_crop, size=self.image_size, crop_fraction=self.crop_fraction)
    return ops.random_flip(img, s_flip, self.flip_p)

  def make_views(self, example, seed):
    s_view, s_mask = ops.split_seed(seed, 2)
    out = {"image": self._view(example["image"], s_view) * 2.0 - 1.0}
    if self.mask == "random":
      out["mask"] = ops.random_region_mask(s_mask, self.image_size)
    return out

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  def eval_preprocess(self, image):
    """The encoder's input: the whole evaluation view in [-1, 1] (no hole)."""
    return self.eval_view(image) * 2.0 - 1.0

  # -- the task
  def _task(self, batch):
    """(context input, target, L2 weights, removed mask of the target) of a batch."""
    image = batch["image"]
    if self.mask == "center":
      hole = jnp.asarray(self.hole)[None]
      s, e = self.start, self.start + self.side
      target, weights = image[:, s:e, s:e], jnp.asarray(self.weights)[None]
      removed = hole[:, s:e, s:e]
    else:
      hole = batch["mask"]
      target, weights, removed = image, jnp.where(hole > 0, 1.0, self.known_weight), hole
    context = image * (1.0 - hole) + jnp.asarray(self.fill) * hole
    return context, target, weights, removed

  # -- model
  def init(self, rng, batch):
    r_g, r_d = jax.random.split(rng)
    context, target, _, _ = self._task({k: jnp.asarray(v) for k, v in batch.items()})
    g = self.model.init(r_g, context, train=True)
    params, stats = {"generator": g["params"]}, {"generator": g["batch_stats"]}
    if self.adversarial:
      params["discriminator"], stats["discriminator"] = self.adversary.init(r_d, target)
    return params, {"batch_stats": stats}

  def _generate(self, params, state, context, *, train: bool):
    return apply_bn(self.model, {"params": params["generator"], "batch_stats": state["batch_stats"]["generator"]},
                    context, train=train)

  def discriminator_loss(self, params, state, batch, rng, step):
    """The discriminator's BCE on the real target vs the (fixed) generator's prediction."""
    del rng, step
    context, target, _, _ = self._task(batch)
    fake, _ = self._generate(params, state, context, train=True)  # the generator's statistics move in its own phase
    return self.adversary.discriminator_loss(params, state, target, fake)

  def generator_loss(self, params, state, batch, rng, step):
    """``l2_weight`` x weighted L2 + ``(1 - l2_weight)`` x the non-saturating adversarial loss."""
    del rng, step
    context, target, weights, removed = self._task(batch)
    pred, g_stats = self._generate(params, state, context, train=True)
    l2 = losses.inpainting_l2(pred, target, self.l2_weight * weights)
    sums = _removed_sq_error(pred, target, removed)
    metrics = {"l2": jnp.mean(jnp.square(pred - target)),  # the official Err_G_L2 (unweighted, [-1, 1] units)
               "hole_mse": sums[0] / jnp.maximum(sums[1], 1.0)}
    loss = l2
    if self.adversarial:
      adv, _ = self.adversary.generator_loss(params, state, pred)
      loss = l2 + (1.0 - self.l2_weight) * adv
      metrics["adv"] = adv
    return loss, (with_batch_stats(state, "generator", g_stats), metrics)

  def phases(self):
    if not self.adversarial:
      return (Phase("default", self.generator_loss),)
    return (Phase("discriminator", self.discriminator_loss, key="discriminator"),
            Phase("generator", self.generator_loss, key="generator", lr_mult=self.generator_lr_mult))

  def predict(self, params, state, batch):
    """Inference-mode prediction of the target region of a `make_views` batch, [B, side, side, 3] in [-1, 1]."""
    context, _, _, _ = self._task(batch)
    return self._generate(params, state, context, train=False)[0]

  def heldout_terms(self, params, state, batch):
    """Sums and counts over the removed pixels' channels of the squared error (pixels in [0, 1])
    of the prediction ("hole_mse") and of the mean fill ("mean_fill_mse")."""
    _, target, _, removed = self._task(batch)
    fill = jnp.broadcast_to(jnp.asarray(self.fill), target.shape)
    return {"hole_mse": _removed_sq_error(self.predict(params, state, batch), target, removed),
            "mean_fill_mse": _removed_sq_error(fill, target, removed)}

  def embed(self, params, state, images):
    return self.model.apply({"params": params["generator"], "batch_stats": state["batch_stats"]["generator"]},
                            images, method=ContextEncoderNet.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params["generator"], "batch_stats": state["batch_stats"]["generator"]},
                            images, method=ContextEncoderNet.block_features)

  def backbone_variables(self, params, state):
    out = {"params": params["generator"]["backbone"]}
    stats = state["batch_stats"]["generator"].get("backbone")
    if stats:
      out["batch_stats"] = stats
    return out

  def inpaint(self, params, state, rgb: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Views [N, S, S, 3] in [0, 1] -> (the input with its region removed, the prediction pasted
    into the removed region), both in [0, 1]. Random masks are drawn from `seed`."""
    batch = {"image": jnp.asarray(rgb) * 2.0 - 1.0}
    if self.mask == "random":
      batch["mask"] = jnp.stack([jnp.asarray(ops.random_region_mask(tf.constant([seed, i]), self.image_size).numpy())
                                 for i in range(len(rgb))])
    context, _, _, removed = self._task(batch)
    pred = jax.jit(self.predict)(params, state, batch)
    s, e = self.start, self.start + self.side
    full = batch["image"].at[:, s:e, s:e].set(jnp.where(removed > 0, pred, batch["image"][:, s:e, s:e]))
    to01 = lambda x: np.clip((np.asarray(x) + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)  # noqa: E731
    return to01(context), to01(full)

  def write_artifacts(self, workdir, *, params, state, source, heldout=None):
    """inpaintings.png: (input with the hole, inpainted, original) for 8 held-out images."""
    src = heldout if heldout is not None else source
    path = os.path.join(workdir, "inpaintings.png")

    def panels(rgb):
      masked, filled = self.inpaint(params, state, rgb)
      return masked, filled, rgb

    return [reconstruction_grid(src, panels, self.eval_view, path, title=f"Context Encoder ({self.mask})",
                                columns="input | inpainted | original")]

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model), "mask": self.mask,
            "adversarial": self.adversarial,
            **({"discriminator": module_signature(self.disc)} if self.adversarial else {})}
