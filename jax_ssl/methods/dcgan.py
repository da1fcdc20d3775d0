"""DCGAN discriminator features (Radford, Metz & Chintala, ICLR 2016).

A generator maps z (100 dims, uniform in [-1, 1] as the paper; ``noise="normal"`` as
soumith/dcgan.torch) to images through stride-2 transposed convolutions with BatchNorm and ReLU
and a tanh (`models.DCGANGenerator`); a discriminator of stride-2 convolutions with BatchNorm
on every layer but the first and LeakyReLU 0.2 (`models.DCGANDiscriminator` over a
`models.DCGANEncoder` trunk) tells real images from generated ones. N(0, 0.02) initialization,
no convolution biases (the official code zeroes them), images in [-1, 1]. One step updates the
discriminator (BCE on a real and a generated batch, each through BatchNorm separately, as the
Torch code's two forward passes), then the generator (the non-saturating loss, a fresh z), each
with the run's optimizer (the paper's Adam 2e-4, beta1 0.5, in the configs)
(`losses.gan_discriminator_loss`, `losses.gan_generator_loss`).

Features (paper Sec. 5.1): every discriminator layer max-pooled to a 4 x 4 grid, flattened and
concatenated (`DCGANEncoder`'s pooled output), in inference mode with BatchNorm statistics
recomputed over the training images (`calibrate`: the discriminator's running statistics mix
real and generated batches). The recomputed statistics are the average over batches of
`calibration_batch` training images of each BatchNorm layer's batch mean and variance in
training mode (as PyTorch's ``swa_utils.update_bn``; the last batch is padded by the input
pipeline and its padding counts in that batch's statistics); the trainer stores them in the
final checkpoint, the evaluation recomputes them for every network row (the random-init
discriminator's too). `write_artifacts` writes samples.png: an 8 x 8 grid of generated images.
"""

from __future__ import annotations

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl import models, parallel
from jax_ssl.data import ops
from jax_ssl.methods._base import Method, Phase
from jax_ssl.methods._parts import Adversary, apply_bn, with_batch_stats
from jax_ssl.methods._common import eval_input, module_signature, save_image_grid, square_view


class DCGAN(Method):
  """DCGAN with the discriminator's features evaluated.

  Args:
    backbone: the discriminator's trunk, a `models.DCGANEncoder` (`build_backbone("dcgan")`).
    image_size: side of the images (4 * 2^k); photos: shorter side resized to
      `image_size / crop_fraction`, random crop (dcgan.torch: loadSize 96 -> fineSize 64).
    z_dim: 100. noise: "uniform" (the paper) or "normal" (dcgan.torch). generator_width: ngf
      (the generator's last hidden layer; it doubles per layer towards z).
    flip_p: horizontal flips (0: the paper names none). eval_crop_fraction: evaluation view.
    calibration_batch: images per batch of the BatchNorm recomputation (`calibrate`).
    mean, std: accepted for the common constructor; unused (images in [-1, 1]).
  """

  name = "dcgan"
  input_description = "RGB scaled to [-1, 1]: [N, H, W, 3]"

  def __init__(self, *, backbone: nn.Module, image_size: int = 32, z_dim: int = 100, noise: str = "uniform",
               generator_width: int = 64, flip_p: float = 0.0, crop_fraction: float = 1.0,
               eval_crop_fraction: float = 1.0, calibration_batch: int = 256, mean=None, std=None):
    del mean, std
    if noise not in ("uniform", "normal"):
      raise ValueError(f"noise must be 'uniform' or 'normal', got {noise!r}")
    self.image_size, self.z_dim, self.noise = image_size, z_dim, noise
    self.flip_p, self.crop_fraction, self.eval_crop_fraction = flip_p, crop_fraction, eval_crop_fraction
    self.calibration_batch = calibration_batch
    self.gen = models.DCGANGenerator(image_size=image_size, width=generator_width)
    self.gen.num_upsamplings  # noqa: B018  (validates image_size)
    self.disc = models.DCGANDiscriminator(backbone)
    self.adversary = Adversary(self.disc)

  # -- data
  def make_views(self, example, seed):
    s_crop, s_flip = ops.split_seed(seed, 2)
    img = square_view(ops.to_float(example["image"]), s_crop, size=self.image_size, crop_fraction=self.crop_fraction)
    return {"image": ops.random_flip(img, s_flip, self.flip_p) * 2.0 - 1.0}

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  def eval_preprocess(self, image):
    """The discriminator's input: the evaluation view in [-1, 1]."""
    return self.eval_view(image) * 2.0 - 1.0

  # -- model
  def sample_z(self, rng, n: int):
    if self.noise == "uniform":
      return jax.random.uniform(rng, (n, self.z_dim), minval=-1.0, maxval=1.0)
    return jax.random.normal(rng, (n, self.z_dim))

  def init(self, rng, batch):
    r_z, r_g, r_d = jax.random.split(rng, 3)
    image = jnp.asarray(batch["image"])
    g = self.gen.init(r_g, self.sample_z(r_z, len(image)), train=True)
    d_params, d_stats = self.adversary.init(r_d, image)
    return ({"generator": g["params"], "discriminator": d_params},
            {"batch_stats": {"generator": g["batch_stats"], "discriminator": d_stats}, "feature_stats": d_stats})

  def _generate(self, params, state, z):
    return apply_bn(self.gen, {"params": params["generator"], "batch_stats": state["batch_stats"]["generator"]}, z,
                    train=True)

  def discriminator_loss(self, params, state, batch, rng, step):
    del step
    real = batch["image"]
    fake, _ = self._generate(params, state, self.sample_z(rng, len(real)))  # the generator's statistics move in its phase
    return self.adversary.discriminator_loss(params, state, real, fake)

  def generator_loss(self, params, state, batch, rng, step):
    del step
    fake, g_stats = self._generate(params, state, self.sample_z(rng, len(batch["image"])))
    loss, d_fake = self.adversary.generator_loss(params, state, fake)
    return loss, (with_batch_stats(state, "generator", g_stats), {"d_fake": d_fake})

  def phases(self):
    return (Phase("discriminator", self.discriminator_loss, key="discriminator"),
            Phase("generator", self.generator_loss, key="generator"))

  # -- features
  def _feature_vars(self, params, state):
    return {"params": params["discriminator"], "batch_stats": state["feature_stats"]}

  def embed(self, params, state, images):
    return self.disc.apply(self._feature_vars(params, state), images, method=models.DCGANDiscriminator.features)

  def embed_blocks(self, params, state, images):
    return self.disc.apply(self._feature_vars(params, state), images, method=models.DCGANDiscriminator.block_features)

  def backbone_variables(self, params, state):
    out = {"params": params["discriminator"]["backbone"]}
    if state["feature_stats"].get("backbone"):
      out["batch_stats"] = state["feature_stats"]["backbone"]
    return out

  def _batch_moments(self, params, state, images):
    """Every discriminator BatchNorm layer's training-mode batch mean and variance on `images`,
    flattened and repeated for each image [B, F]: a BatchNorm layer started from zero running
    statistics holds (1 - momentum) x the batch's after one training-mode pass."""
    zeros = jax.tree.map(jnp.zeros_like, state["feature_stats"])
    _, stats = self.adversary.logits(params, zeros, images)
    flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(stats)]) / (1.0 - 0.9)
    return jnp.broadcast_to(flat, (len(images), flat.size))

  def calibrate(self, params, state, source, *, mesh=None):
    """`feature_stats` = the discriminator's BatchNorm statistics recomputed over `source`."""
    if not jax.tree.leaves(state["feature_stats"]):
      return state
    mesh = mesh or parallel.make_mesh()
    n = mesh.devices.size
    batch = self.calibration_batch - self.calibration_batch % n or n
    fn = _moments_fn(self, mesh)
    feats = parallel.extract_features_sharded(fn, self.eval_preprocess, params, state, source, batch_size=batch,
                                              mesh=mesh)
    flat = jax.jit(lambda f, v: jnp.sum(f * v[..., None], axis=(0, 1)) / jnp.sum(v))(feats.features,
                                                                                    feats.valid.astype(jnp.float32))
    leaves, treedef = jax.tree.flatten(state["feature_stats"])
    sizes = np.cumsum([0] + [x.size for x in leaves])
    new = [flat[a:b].reshape(x.shape).astype(x.dtype) for a, b, x in zip(sizes[:-1], sizes[1:], leaves)]
    return {**state, "feature_stats": jax.tree.unflatten(treedef, new)}

  # -- pictures
  def samples(self, params, state, n: int = 64, seed: int = 0) -> np.ndarray:
    """`n` generated images [n, S, S, 3] in [0, 1] (the generator in inference mode)."""
    z = self.sample_z(jax.random.key(seed), n)
    fake = jax.jit(lambda p, s, z: self.gen.apply({"params": p, "batch_stats": s}, z, train=False))(
        params["generator"], state["batch_stats"]["generator"], z)
    return np.clip((np.asarray(fake) + 1.0) / 2.0, 0.0, 1.0)

  def write_artifacts(self, workdir, *, params, state, source, heldout=None):
    """samples.png: an 8 x 8 grid of generated images (fixed z)."""
    del source, heldout
    imgs = self.samples(params, state, 64)
    return [save_image_grid(imgs.reshape((8, 8) + imgs.shape[1:]), os.path.join(workdir, "samples.png"), min_side=64)]

  def signature(self):
    return {"method": self.name, "generator": module_signature(self.gen), "discriminator": module_signature(self.disc),
            "z_dim": self.z_dim}


@functools.lru_cache(maxsize=8)
def _moments_fn(method: DCGAN, mesh):
  """The jitted `_batch_moments` of `method` on `mesh` (compiled once per method and mesh)."""
  return parallel.make_embed_fn(method._batch_moments, mesh)  # pylint: disable=protected-access
