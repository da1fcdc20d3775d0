"""DetCon (Hénaff et al. 2021, "Efficient Visual Pretraining with Contrastive Detection").

Instead of whole images, DetCon contrasts regions: each view carries R = 16 binary masks on
the backbone's feature grid (segments of an unsupervised Felzenszwalb-Huttenlocher
segmentation, ground-truth segments, or a spatial grid), the feature map is mean-pooled
inside each mask, and pooled vectors of the same segment in the two views are positives
(Sec. 3.1, Eq. 3; `jax_ssl.losses.detcon_loss`).

Where the projection happens: as in the official google-deepmind/detcon ``detcon_b.py``, the
backbone's final feature map [N, h, w, C] is pooled per mask FIRST (``mask_pool``, mean over
the mask's cells) and the projector (and predictor) MLP is then applied to each pooled vector
[N, R, C] (its BatchNorm normalizes over all N x R slots).

Masks (input pipeline, `jax_ssl.data.ops.detcon_view`): one crop box and flip per view,
applied to the image (bilinear) and its id map (nearest); majority-vote downsampling to the
feature grid (ties to the smaller id); 16 ids per view drawn uniformly, with replacement,
among the ids present on that view's grid. `mask_kind`:

* "fh": FH masks of every training image, computed once by `prepare_source` and cached on
  disk (`jax_ssl.data._masks.fh_masks`), or per example in the pipeline with
  `fh_on_the_fly=True` (small data sets; no cache).
* "dataset": masks given by the source (`source.extras["mask"]`, ids < `max_ids`).
* "grid": a `grid_size x grid_size` spatial grid (the paper's spatial-heuristic baseline).

DetCon-S builds on SimCLR: one network, both views in one forward pass, the pooled
projections contrasted with ``detcon_loss`` using predictions = targets (temperature 0.1).
DetCon-B builds on BYOL: the online predictor's outputs are contrasted with the EMA target's
projections (`jax_ssl.methods.byol`), per-view forward passes as the official code.
Frozen evaluation uses the backbone's globally pooled features.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import losses
from jax_ssl import data as fh  # Felzenszwalb-Huttenlocher masks: fh_masks, fh_segment, with_masks
from jax_ssl.data import DataError, ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature, split_views
from jax_ssl.methods.byol import BYOL_VIEW1, BYOL_VIEW2, bootstrap_metrics
from jax_ssl.methods._parts import Bootstrap
from jax_ssl.models import MLP

MASK_KINDS = ("fh", "grid", "dataset")


class MaskPooledHead(nn.Module):
  """backbone map [N, h, w, C] -> mask_pool with masks [N, R, h, w] -> head -> z [N, R, D].

  Returns (pooled [N, R, C], z). `features` / `block_features` give the backbone's globally
  pooled features for evaluation.
  """

  backbone: nn.Module
  head: nn.Module

  def __call__(self, x, masks, *, train: bool):
    fmap = self.backbone(x, train=train, return_map=True)
    pooled = losses.mask_pool(fmap, masks)
    return pooled, self.head(pooled, train=train)

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


def feature_grid(backbone: nn.Module, image_size: int) -> int:
  """Side of the backbone's final feature map for `image_size` inputs (shape inference only)."""
  x = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  out = jax.eval_shape(lambda v: backbone.init_with_output(jax.random.key(0), v, train=False, return_map=True)[0], x)
  h, w = out.shape[1:3]
  if h != w or image_size % h:
    raise ValueError(f"DetCon needs a square feature grid dividing the view size; the backbone maps "
                     f"{image_size}px views to {h}x{w}")
  return int(h)


class _MaskedViews:
  """Views with masks, mask preparation and the mask picture, shared by DetCon-S and -B."""

  def _setup_masks(self, *, backbone, image_size: int, mask_kind: str, num_samples: int, max_ids: int,
                   grid_size: int, fh_scale: float, fh_sigma: float, fh_min_size: int, fh_on_the_fly: bool,
                   mask_cache_dir: str | None, view_kwargs, view1_kwargs, view2_kwargs, mean, std,
                   eval_crop_fraction: float):
    if mask_kind not in MASK_KINDS:
      raise ValueError(f"mask_kind must be one of {MASK_KINDS}, got {mask_kind!r}")
    if mask_kind == "grid" and grid_size * grid_size > max_ids:
      raise ValueError(f"a {grid_size}x{grid_size} grid needs max_ids >= {grid_size ** 2}, got {max_ids}")
    if num_samples < 1:
      raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    self.image_size = int(image_size)
    self.grid = feature_grid(backbone, self.image_size)
    self.mask_kind = mask_kind
    self.num_samples = int(num_samples)
    self.max_ids = int(max_ids)
    self.grid_size = int(grid_size)
    self.fh_params = {"scale": float(fh_scale), "sigma": float(fh_sigma), "min_size": int(fh_min_size)}
    self.fh_on_the_fly = bool(fh_on_the_fly)
    self.mask_cache_dir = mask_cache_dir
    base = dict(view_kwargs or {})
    self.view_kwargs = ({**base, **dict(view1_kwargs or {})}, {**base, **dict(view2_kwargs or {})})
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction

  # -- host side
  def prepare_source(self, source):
    """Attaches FH masks (cached) for mask_kind "fh"; checks a "dataset" source has masks."""
    if self.mask_kind == "fh" and not self.fh_on_the_fly and "mask" not in source.extras:
      # Every core of every process: process p computes shards p, p + P, ... (shared cache dir).
      masks = fh.fh_masks(source, max_ids=self.max_ids, cache_dir=self.mask_cache_dir, **self.fh_params,
                          process_index=jax.process_index(), process_count=jax.process_count())
      return fh.with_masks(source, masks)
    if self.mask_kind == "dataset" and "mask" not in source.extras:
      raise DataError(f"{source.name}: mask_kind='dataset' needs masks given by the source "
                      "(source.extras['mask'], int [N, H, W]); use mask_kind='fh' or 'grid' otherwise")
    return source

  # -- tf.data side
  def _image_mask(self, example):
    if self.mask_kind == "grid":
      shape = tf.shape(example["image"])
      return ops.grid_mask(shape[0], shape[1], self.grid_size)
    if self.mask_kind == "fh" and self.fh_on_the_fly:
      seg = lambda im: fh.fh_segment(im, **self.fh_params).astype(np.int32)
      mask = tf.numpy_function(seg, [example["image"]], tf.int32, stateful=False)
      mask.set_shape([None, None])
      return mask
    if "mask" not in example:
      raise DataError(f"DetCon with mask_kind={self.mask_kind!r} needs each example's 'mask': pass the "
                      "source through method.prepare_source(source) first")
    return tf.cast(example["mask"], tf.int32)

  def mask_views(self, example, seed) -> tuple[dict, dict]:
    """The two views of one example (see `ops.detcon_view`), before normalization."""
    img = ops.to_float(example["image"])
    mask = self._image_mask(example)
    s1, s2 = ops.split_seed(seed, 2)
    return tuple(ops.detcon_view(img, mask, s, size=self.image_size, grid=self.grid, num_ids=self.max_ids,
                                 num_samples=self.num_samples, **kw)
                 for s, kw in ((s1, self.view_kwargs[0]), (s2, self.view_kwargs[1])))

  def make_views(self, example, seed):
    v1, v2 = self.mask_views(example, seed)
    return {"view1": self.normalize(v1["image"]), "view2": self.normalize(v2["image"]),
            "masks1": v1["masks"], "masks2": v2["masks"], "ids1": v1["ids"], "ids2": v2["ids"]}

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  def mask_signature(self) -> dict:
    return {"image_size": self.image_size, "num_samples": self.num_samples}

  # -- artifacts
  def write_artifacts(self, workdir, *, params, state, source, heldout=None, num_images: int = 6):
    """`masks.png`: images, their masks, and one training view with its 16 sampled regions."""
    del params, state
    path = os.path.join(workdir, "masks.png")
    write_mask_figure(self, source, path, num_images=num_images)
    return [path]


def write_mask_figure(method, source, path: str, *, num_images: int = 6, seed: int = 0):
  """Rows: image | its mask | view 1 | view 1's mask with the sampled regions (others grey)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  source = method.prepare_source(source)
  n = min(num_images, len(source))
  fig, axes = plt.subplots(n, 4, figsize=(8, 2 * n), squeeze=False)
  cmap = plt.get_cmap("tab20")
  for i in range(n):
    image = tf.constant(source.image(i))
    example = {"image": image, "label": tf.constant(0), "index": tf.constant(i)}
    if "mask" in source.extras:
      m = source.extras["mask"][i]
      example["mask"] = (tf.io.decode_png(m, channels=1, dtype=tf.uint16)[..., 0] if source.extras["mask"].dtype == object
                         else tf.constant(m))
    full = method._image_mask(example).numpy()  # pylint: disable=protected-access
    v1, _ = method.mask_views(example, tf.constant([seed, i], tf.int64))
    small = ops.downsample_mask(v1["mask"], method.grid, num_ids=method.max_ids).numpy()
    ids = set(v1["ids"].numpy().tolist())
    chosen = np.where(np.isin(small, list(ids)), small % 20, -1)
    colour = lambda m: np.where(m[..., None] >= 0, cmap(np.maximum(m, 0) % 20)[..., :3], 0.6)
    panels = [(image.numpy(), "image"), (colour(full % 20), f"mask ({int(full.max()) + 1} ids)"),
              (np.clip(v1["image"].numpy(), 0, 1), "view 1"),
              (colour(chosen), f"{len(ids)} of {len(np.unique(small))} ids sampled")]
    for ax, (img, title) in zip(axes[i], panels):
      ax.imshow(img, interpolation="nearest")
      ax.set_title(title, fontsize=7)
      ax.axis("off")
  fig.suptitle(f"{method.name}: {method.mask_kind} masks, feature grid {method.grid}x{method.grid}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


_MASK_DEFAULTS = dict(mask_kind="fh", num_samples=16, max_ids=256, grid_size=4, fh_scale=1000.0, fh_sigma=0.8,
                      fh_min_size=1000, fh_on_the_fly=False, mask_cache_dir=None)


class DetConS(_MaskedViews, Method):
  """DetCon-S: SimCLR-style contrastive detection.

  Args:
    backbone: a Flax module with `return_map=True` giving the final feature map [N, h, w, C].
    image_size: side of the training views (a multiple of the feature grid).
    proj_hidden_dims, proj_dim: projection MLP applied to each mask-pooled vector.
    temperature: of `detcon_loss` (0.1 in the paper).
    local_negatives: same-image slots of other segments are negatives (the official default).
    mask_kind, num_samples (R), max_ids, grid_size, fh_scale, fh_sigma, fh_min_size,
      fh_on_the_fly, mask_cache_dir: the masks (see the module docstring).
    view_kwargs, view1_kwargs, view2_kwargs: photometric/crop arguments of `simclr_view`.
    mean, std, eval_crop_fraction: as SimCLR.

  Batch: view1/view2 [B, S, S, 3], masks1/masks2 [B, R, h, w], ids1/ids2 [B, R].
  """

  name = "detcon_s"

  def __init__(self, *, backbone: nn.Module, image_size: int, proj_hidden_dims: Sequence[int] = (2048,),
               proj_dim: int = 128, temperature: float = 0.1, local_negatives: bool = True,
               view_kwargs: dict | None = None, view1_kwargs: dict | None = None, view2_kwargs: dict | None = None,
               mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD, eval_crop_fraction: float = 0.875, **mask_kwargs: Any):
    unknown = set(mask_kwargs) - set(_MASK_DEFAULTS)
    if unknown:
      raise TypeError(f"DetConS got unknown arguments {sorted(unknown)}")
    self._setup_masks(backbone=backbone, image_size=image_size, view_kwargs=view_kwargs, view1_kwargs=view1_kwargs,
                      view2_kwargs=view2_kwargs, mean=mean, std=std, eval_crop_fraction=eval_crop_fraction,
                      **{**_MASK_DEFAULTS, **mask_kwargs})
    self.model = MaskPooledHead(backbone, MLP(tuple(proj_hidden_dims), proj_dim, use_bn=True))
    self.temperature = temperature
    self.local_negatives = local_negatives

  def init(self, rng, batch):
    variables = self.model.init(rng, jnp.asarray(batch["view1"]), jnp.asarray(batch["masks1"]), train=True)
    return variables["params"], {"batch_stats": variables["batch_stats"]}

  def loss(self, params, state, batch, rng, step):
    del rng, step
    x = jnp.concatenate([batch["view1"], batch["view2"]], axis=0)
    masks = jnp.concatenate([batch["masks1"], batch["masks2"]], axis=0)
    (_, z), updates = self.model.apply({"params": params, **state}, x, masks, train=True, mutable=["batch_stats"])
    z1, z2 = split_views(z, 2)
    ids1, ids2 = batch["ids1"], batch["ids2"]
    loss = losses.detcon_loss(z1, z2, z1, z2, ids1, ids2, ids1, ids2, temperature=self.temperature,
                              local_negatives=self.local_negatives)
    return loss, ({"batch_stats": updates["batch_stats"]}, {"slots_with_positive": _positive_fraction(ids1, ids2)})

  def embed(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method="features")

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method="block_features")

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model), **self.mask_signature()}


class DetConB(_MaskedViews, Method):
  """DetCon-B: BYOL-style contrastive detection (online predictions vs EMA-target projections).

  Args: those of `BYOL` (projector, predictor, tau_base, BYOL's asymmetric views by default)
  and of `DetConS` (temperature, local_negatives, masks). Batch as DetCon-S. The networks are
  BYOL's `Bootstrap` part with a mask-pooling encoder (composition, not a BYOL subclass).
  """

  name = "detcon_b"

  def __init__(self, *, backbone: nn.Module, image_size: int, proj_hidden_dims: Sequence[int] = (4096,),
               proj_dim: int = 256, pred_hidden_dims: Sequence[int] = (4096,), tau_base: float = 0.996,
               temperature: float = 0.1, local_negatives: bool = True, view_kwargs: dict | None = None,
               view1_kwargs: dict | None = None, view2_kwargs: dict | None = None, mean=ops.IMAGENET_MEAN,
               std=ops.IMAGENET_STD, eval_crop_fraction: float = 0.875, **mask_kwargs: Any):
    unknown = set(mask_kwargs) - set(_MASK_DEFAULTS)
    if unknown:
      raise TypeError(f"DetConB got unknown arguments {sorted(unknown)}")
    self._setup_masks(backbone=backbone, image_size=image_size, view_kwargs=view_kwargs,
                      view1_kwargs={**BYOL_VIEW1, **dict(view1_kwargs or {})},
                      view2_kwargs={**BYOL_VIEW2, **dict(view2_kwargs or {})}, mean=mean, std=std,
                      eval_crop_fraction=eval_crop_fraction, **{**_MASK_DEFAULTS, **mask_kwargs})
    self.net = Bootstrap(MaskPooledHead(backbone, MLP(tuple(proj_hidden_dims), proj_dim, use_bn=True)),
                         MLP(tuple(pred_hidden_dims), proj_dim, use_bn=True), tau_base=tau_base)
    self.encoder, self.predictor = self.net.encoder, self.net.predictor
    self.tau_base = float(tau_base)
    self.temperature = temperature
    self.local_negatives = local_negatives

  def init(self, rng, batch):
    return self.net.init(rng, *jax.tree.map(jnp.asarray, (batch["view1"], batch["masks1"])))

  def loss(self, params, state, batch, rng, step):
    """DetCon's Eq. 3 between online predictions and the other view's target projections."""
    del rng
    x1, x2 = (batch["view1"], batch["masks1"]), (batch["view2"], batch["masks2"])
    (z1, p1, t1), (_, p2, t2), new_state = self.net.two_views(params, state, x1, x2)
    ids1, ids2 = batch["ids1"], batch["ids2"]
    loss = losses.detcon_loss(p1, p2, jax.lax.stop_gradient(t1), jax.lax.stop_gradient(t2), ids1, ids2, ids1, ids2,
                              temperature=self.temperature, local_negatives=self.local_negatives)
    return loss, (new_state, bootstrap_metrics(self.net, z1, step, self.total_steps))

  def update_state(self, params, state, step):
    return self.net.update_state(params, state, step, self.total_steps)

  def embed(self, params, state, images):
    return self.net.embed(params, state, images)

  def embed_blocks(self, params, state, images):
    return self.net.embed(params, state, images, blocks=True)

  def signature(self):
    return {"method": self.name, "model": module_signature(self.encoder),
            "predictor": module_signature(self.predictor), **self.mask_signature()}


def _positive_fraction(ids1, ids2):
  """Fraction of view-1 slots whose id was also sampled in view 2 (slots that carry a loss)."""
  return jnp.mean(jnp.any(ids1[:, :, None] == ids2[:, None, :], axis=-1).astype(jnp.float32))
