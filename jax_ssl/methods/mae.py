"""MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners").

Each image is cut into patches; a random 75% of them (per image, by argsort of uniform noise) is
removed; the ViT encoder sees only the visible patches (fixed 2-D sin-cos position embeddings
added before masking, the class token appended after it with a zero position term); a
lightweight decoder (512 wide, 8 blocks, 16 heads, its own fixed sin-cos positions, a learned
mask token in every removed position) predicts the pixels of every patch, and the loss is the
mean squared error on the removed patches of per-patch normalized pixels (`losses.mae_loss`).
Evaluation uses the encoder's class token on the full, unmasked image.

Where the paper is silent the conventions are the official code's (facebookresearch/mae; read
for its conventions, not copied: it is under a non-commercial licence):
* initialization: the patch embedding as the xavier-uniform linear map of a flattened patch
  (bound sqrt(6 / (p*p*3 + D))) with torch's default conv bias; the class and mask tokens
  normal(0.02); every linear layer xavier-uniform with zero bias, where torch's fused qkv
  projection Linear(D, 3D) gives the query / key / value kernels the bound sqrt(6 / (4D));
  LayerNorm epsilon 1e-6 (the `models.ViT` blocks, pre-LN, exact GELU);
* targets: the normalized input image (the pipeline's mean/std), patchified; with `norm_pix`
  each target patch is standardized by its own mean and unbiased variance (eps 1e-6);
* optimization (the configs): AdamW betas (0.9, 0.95), weight decay 0.05 on kernels only (not
  biases, norms, position embeddings or tokens), lr 1.5e-4 x batch / 256, warm-up then cosine;
  views: random resized crop (0.2, 1), bicubic, and horizontal flip only.
"""

from __future__ import annotations

import math
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature, save_image_grid
from jax_ssl.models import Encoder, ViT, sincos_2d_posemb


class MAENet(nn.Module):
  """The ViT encoder on the visible patches and MAE's decoder on every patch.

  `__call__(images, ids_keep, ids_restore)` -> predicted patches [B, L, p*p*3] (class token
  dropped); `features(images)` -> the encoder's pooled features of the whole image.
  """

  encoder: ViT
  decoder_width: int = 512
  decoder_depth: int = 8
  decoder_heads: int = 16
  decoder_mlp_ratio: float = 4.0
  channels: int = 3

  @nn.compact
  def __call__(self, images, ids_keep, ids_restore, *, train: bool):
    p = self.encoder.patch_size
    b, height, width, _ = images.shape
    h, w = height // p, width // p
    tokens = self.encoder.embed_patches(images)  # [B, L, D], positions added
    visible = jnp.take_along_axis(tokens, ids_keep[..., None], axis=1)
    encoded = self.encoder.encode(visible, train=train)  # [B, extra + L_keep, D]
    extra = 1 if self.encoder.pool == "cls" else 0

    dense = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.zeros)
    x = nn.Dense(self.decoder_width, name="decoder_embed", **dense)(encoded.astype(jnp.float32))
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.decoder_width))
    num_masked = h * w - ids_keep.shape[1]
    patches = jnp.concatenate([x[:, extra:], jnp.broadcast_to(mask_token, (b, num_masked, self.decoder_width))],
                              axis=1)
    patches = jnp.take_along_axis(patches, ids_restore[..., None], axis=1)  # back to raster order
    patches = patches + jnp.asarray(sincos_2d_posemb(h, w, self.decoder_width))[None]
    x = jnp.concatenate([x[:, :extra], patches], axis=1)  # the class token's position term is zero
    x, _ = Encoder(self.decoder_depth, int(self.decoder_width * self.decoder_mlp_ratio), self.decoder_heads,
                   name="decoder")(x, deterministic=not train)
    pred = nn.Dense(p * p * self.channels, name="decoder_pred", **dense)(x)
    return pred[:, extra:]

  def features(self, images):
    return self.encoder(images, train=False)

  def block_features(self, images):
    return self.encoder(images, train=False, return_blocks=True)


def _path_str(path) -> list[str]:
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def official_init(params, rng, *, width: int, patch_size: int, channels: int = 3):
  """Re-initializes an `MAENet`'s parameters as the official MAE code (see the module docstring)."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(rng, len(leaves))
  fan_patch = patch_size * patch_size * channels
  out = []
  for (path, leaf), key in zip(leaves, keys):
    names = _path_str(path)
    last = names[-1]
    if names[:2] == ["encoder", "embedding"] and last == "kernel":
      bound = math.sqrt(6.0 / (fan_patch + width))  # xavier-uniform of the [D, p*p*3] view
      leaf = jax.random.uniform(key, leaf.shape, leaf.dtype, -bound, bound)
    elif names[:2] == ["encoder", "embedding"] and last == "bias":
      bound = 1.0 / math.sqrt(fan_patch)  # torch's default Conv2d bias
      leaf = jax.random.uniform(key, leaf.shape, leaf.dtype, -bound, bound)
    elif last == "cls":
      leaf = 0.02 * jax.random.normal(key, leaf.shape, leaf.dtype)
    elif last == "kernel" and len(names) >= 2 and names[-2] in ("query", "key", "value"):
      d = leaf.shape[0]  # [D, heads, head_dim], one third of torch's fused Linear(D, 3D)
      bound = math.sqrt(6.0 / (d + 3 * d))
      leaf = jax.random.uniform(key, leaf.shape, leaf.dtype, -bound, bound)
    elif last == "bias" and not any(n.startswith("LayerNorm") or n.endswith("norm") for n in names):
      leaf = jnp.zeros_like(leaf)  # linear layers' biases (the ViT's MLP biases are N(0, 1e-6))
    out.append(leaf)
  return jax.tree_util.tree_unflatten(treedef, out)


class MAE(Method):
  """MAE.

  Args:
    backbone: a `models.ViT` (the encoder); MAE's is posemb="sincos2d", pool="cls".
    image_size: side of the training views (a multiple of the patch size).
    mask_ratio: fraction of patches removed per image (0.75).
    decoder_width, decoder_depth, decoder_heads, decoder_mlp_ratio: the decoder (512, 8, 16, 4).
    norm_pix: per-patch normalized pixel targets (MAE's best; False: the normalized image's pixels).
    crop_scale: the random resized crop's area range ((0.2, 1.0)); the only other augmentation
      is a horizontal flip.
    mean, std: per-channel normalization of the input (the targets are in this space).
    eval_crop_fraction: centre-crop fraction of the evaluation view (ImageNet 0.875).
    official_init: initialize as the official code (True) or keep the flax modules' defaults.

  Params: {"encoder": the ViT, "decoder_embed", "mask_token", "decoder", "decoder_pred"}. No state.
  """

  name = "mae"

  def __init__(self, *, backbone: nn.Module, image_size: int, mask_ratio: float = 0.75, decoder_width: int = 512,
               decoder_depth: int = 8, decoder_heads: int = 16, decoder_mlp_ratio: float = 4.0,
               norm_pix: bool = True, crop_scale=(0.2, 1.0), mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD,
               eval_crop_fraction: float = 0.875, official_init: bool = True):
    if not isinstance(backbone, ViT):
      raise ValueError(f"MAE needs a ViT backbone (model.name='vit'), got {type(backbone).__name__}")
    if image_size % backbone.patch_size:
      raise ValueError(f"MAE image_size {image_size} is not a multiple of the patch size {backbone.patch_size}")
    self.num_patches = (image_size // backbone.patch_size) ** 2
    losses.mae_num_visible(self.num_patches, mask_ratio)  # validates the ratio
    if decoder_width % decoder_heads or decoder_width % 4:
      raise ValueError(f"MAE decoder_width {decoder_width} must be divisible by decoder_heads {decoder_heads} and 4")
    self.net = MAENet(backbone, decoder_width, decoder_depth, decoder_heads, decoder_mlp_ratio)
    self.patch_size = backbone.patch_size
    self.image_size = image_size
    self.mask_ratio = float(mask_ratio)
    self.norm_pix = bool(norm_pix)
    self.crop_scale = tuple(crop_scale)
    self.normalize = Normalizer(mean, std)
    self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    self.eval_crop_fraction = eval_crop_fraction
    self.official_init = official_init

  # -- data
  def make_views(self, example, seed):
    s_crop, s_flip = ops.split_seed(seed, 2)
    img = ops.to_float(example["image"])
    view = ops.random_resized_crop(img, s_crop, self.image_size, scale=self.crop_scale, method="bicubic")
    view = ops.random_flip(view, s_flip)
    return {"view": self.normalize(tf.ensure_shape(view, [self.image_size, self.image_size, 3]))}

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def _masking(self, rng, batch_size):
    return losses.mae_random_mask(rng, batch_size, self.num_patches, mask_ratio=self.mask_ratio)

  def init(self, rng, batch):
    x = jnp.asarray(batch["view"])
    _, keep, restore = self._masking(jax.random.key(0), x.shape[0])
    init_rng, reinit_rng = jax.random.split(rng)
    params = self.net.init(init_rng, x, keep, restore, train=False)["params"]
    if self.official_init:
      params = official_init(params, reinit_rng, width=self.net.encoder.width, patch_size=self.patch_size)
    return params, {}

  def predict(self, params, images, rng):
    """(mask [B, L], predicted patches [B, L, p*p*3]) for one random masking of `images`."""
    mask, keep, restore = self._masking(rng, images.shape[0])
    return mask, self.net.apply({"params": params}, images, keep, restore, train=False)

  def loss(self, params, state, batch, rng, step):
    del step
    x = batch["view"]
    mask_rng, drop_rng = jax.random.split(rng)
    mask, keep, restore = self._masking(mask_rng, x.shape[0])
    pred = self.net.apply({"params": params}, x, keep, restore, train=True, rngs={"dropout": drop_rng})
    target = losses.patchify(x, self.patch_size)
    loss = losses.mae_loss(pred, target, mask, norm_pix=self.norm_pix)
    # The same loss on the visible patches (not trained): how much the decoder merely copies.
    visible = losses.mae_loss(jax.lax.stop_gradient(pred), target, 1.0 - mask, norm_pix=self.norm_pix)
    return loss, (state, {"visible_patch_loss": visible})

  def embed(self, params, state, images):
    return self.net.apply({"params": params}, images, method=MAENet.features)

  def embed_blocks(self, params, state, images):
    return self.net.apply({"params": params}, images, method=MAENet.block_features)

  def backbone_variables(self, params, state):
    return {"params": params["encoder"]}

  # -- pictures
  def reconstruct(self, params, images, rng):
    """(masked input, reconstruction, original), each [B, H, W, 3] in [0, 1], as the official demo.

    The reconstruction shows every patch predicted (visible ones pasted back from the input); with
    `norm_pix` each predicted patch is un-normalized by the statistics (mean, unbiased std) of
    the corresponding input patch, then the input normalization is undone.
    """
    mask, pred = self.predict(params, images, rng)
    target = losses.patchify(images, self.patch_size)
    if self.norm_pix:
      mean = jnp.mean(target, axis=-1, keepdims=True)
      var = jnp.var(target, axis=-1, keepdims=True) * target.shape[-1] / (target.shape[-1] - 1)
      pred = pred * jnp.sqrt(var + 1e-6) + mean
    grid = (images.shape[1] // self.patch_size, images.shape[2] // self.patch_size)
    m = mask[..., None]
    pasted = losses.unpatchify(target * (1 - m) + pred * m, self.patch_size, grid)
    masked = losses.unpatchify(target * (1 - m), self.patch_size, grid)
    to01 = lambda z: jnp.clip(z * self.std + self.mean, 0.0, 1.0)
    masked_vis = jnp.where(losses.unpatchify(jnp.broadcast_to(m, target.shape), self.patch_size, grid) > 0,
                           0.5, to01(masked))
    return masked_vis, to01(pasted), to01(images)

  def write_artifacts(self, workdir, *, params, state, source, heldout=None):
    """reconstructions.png: masked input / reconstruction / original for 8 held-out images."""
    src = heldout if heldout is not None else source
    path = os.path.join(workdir, "reconstructions.png")
    fn = jax.jit(lambda x: self.reconstruct(params, x, jax.random.key(0)))
    return [reconstruction_grid(src, fn, self.eval_preprocess, path, title=f"MAE, mask ratio {self.mask_ratio}")]

  def signature(self):
    return {"method": self.name, "model": module_signature(self.net)}


def reconstruction_grid(source, fn, preprocess, path: str, *, num_images: int = 8, title: str = "",
                        columns: str = "masked | reconstruction | original",
                        min_side: int = 96) -> str:
  """Saves a PNG: one row per image, three panels (`columns` names them in the title; MAE: masked
  input, reconstruction, original); returns `path`.

  Images evenly spaced over `source` (so several classes show), `preprocess` (uint8 -> network
  input, TensorFlow), `fn` (batch -> the three [B, H, W, 3] arrays in [0, 1]); small images are
  enlarged (nearest) to `min_side` pixels so that patches stay visible.
  """
  n = min(num_images, len(source))
  idx = np.linspace(0, len(source) - 1, n).round().astype(int)
  x = np.stack([preprocess(tf.constant(source.image(int(i)))).numpy() for i in idx]).astype(np.float32)
  panels = np.stack([np.asarray(a, np.float32) for a in fn(x)], axis=1)  # [n, 3, H, W, 3]
  return save_image_grid(panels, path, min_side=min_side, pad=4, title=f"{title}: {columns}" if title else "")
