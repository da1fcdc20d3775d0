"""MSN (Assran et al. 2022, "Masked Siamese Networks for Label-Efficient Learning").

Each image gives a target view and anchor views: one more random crop at the target's size
and `focal_views` small "focal" crops. The anchors lose a random 15% of their patches
("random masking": one permutation per resolution group, shared by the batch, as the official
code) and go through the online ViT and projection head; the target view goes unmasked
through an EMA copy of both. Each output is compared with learnable prototypes; the anchors'
prototype probabilities are trained towards the target's sharpened, Sinkhorn-balanced ones,
with a mean-entropy-maximization regularizer (`losses.msn_loss`). Evaluation uses the target
encoder's class token (the official linear evaluation loads the target encoder).

Details from the official code (facebookresearch/msn, read for its conventions):
* views: the first random crop is the target (`imgs[0]`), the anchors are `imgs[1:]` (one more
  random crop and 10 focal crops); random resized crops (0.3, 1) at 224 and (0.05, 0.3) at 96
  px, flip, colour jitter of strength 0.5 (p 0.8), grayscale (p 0.2), Gaussian blur (p 0.5);
* patch drop: `floor(L * (1 - 0.15))` patches kept per view, after the position embeddings;
* head: Linear-BN-GELU-Linear-BN-GELU-Linear (2048, 2048, 256), applied once to all anchors;
* prototypes: [1024, 256] uniform(+-1/sqrt(256)), no weight decay, not renormalized (the loss
  normalizes); their gradient is SUMMED over GPUs (`AllReduceSum`), not averaged like the
  encoder's: `prototype_grad_mult` multiplies it (the official run's world size reproduces it;
  1 averages it like everything else);
* EMA momentum linear from 0.996 over 1.25 x the run's steps (ends at 0.9992); the lr and
  weight-decay cosines also span 1.25 x the run (`config.train.schedule_scale`).
Deviations: the gradient-norm clipping (3.0) covers the prototypes too (official: encoder
only); learned position embeddings are resampled bilinearly for the focal crops (official:
bicubic); the hidden Linear layers of the head have no bias before BatchNorm (the same function).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature
from jax_ssl.methods._parts import EMATarget, Prototypes, apply_bn
from jax_ssl.models import MLP, ViT


class MSNNet(nn.Module):
  """ViT encoder (optionally on a kept subset of each group's patches) + projection head.

  `__call__(crops, keep)` -> (features [V*B, D], projections [V*B, out]) for crops grouped by
  resolution; `keep[g]` (int [L_keep]) selects the patches of group g for every image, None
  keeps all.
  """

  encoder: ViT
  head: MLP

  @nn.compact
  def __call__(self, crops: Sequence, keep: Sequence | None = None, *, train: bool):
    feats = []
    for g, (start, stop) in enumerate(ops.resolution_groups([c.shape[1:] for c in crops])):
      x = jnp.concatenate(list(crops[start:stop]), axis=0) if stop - start > 1 else crops[start]
      if keep is None or keep[g] is None:
        feats.append(self.encoder(x, train=train))
      else:
        tokens = self.encoder.embed_patches(x)[:, keep[g]]
        feats.append(self.encoder.pool_tokens(self.encoder.encode(tokens, train=train)))
    f = jnp.concatenate(feats, axis=0) if len(feats) > 1 else feats[0]
    return f, self.head(f, train=train)

  def features(self, images):
    return self.encoder(images, train=False)

  def block_features(self, images):
    return self.encoder(images, train=False, return_blocks=True)


def scale_grad(x, mult: float):
  """`x` whose gradient is multiplied by `mult` (the value is unchanged)."""
  if mult == 1.0:
    return x
  return jax.lax.stop_gradient(x) + mult * (x - jax.lax.stop_gradient(x))


class MSN(Method):
  """MSN.

  Args:
    backbone: a `models.ViT` (MSN's ImageNet encoder: ViT-S/16, class token, learned positions).
    image_size, focal_size: sides of the random (target and anchor) and focal crops.
    rand_views, focal_views: anchor views of each kind (1 and 10); the target is one more
      random crop.
    rand_crop_scale, focal_crop_scale: their area ranges ((0.3, 1), (0.05, 0.3)).
    patch_drop: fraction of each anchor's patches removed (0.15).
    proj_hidden_dims, proj_dim: the head (2048, 2048) -> 256, BN and GELU.
    num_prototypes: K (1024).
    temperature, sharpen_temperature, me_max_weight, use_sinkhorn, sinkhorn_iters: `losses.msn_loss`.
    tau_base, ema_span: EMA momentum from `tau_base`, linear over `ema_span` x the run (0.996, 1.25).
    prototype_grad_mult: the prototypes' gradient multiplier (official: the number of GPUs).
    view_kwargs: `ops.simclr_view` arguments for every crop (MSN: jitter 0.5, blur 0.5).
    mean, std, eval_crop_fraction: normalization and the evaluation view.

  Params: {"encoder": ViT + head, "prototypes": [K, D]}. State: {"batch_stats", "target"}.
  """

  name = "msn"
  no_decay_names = Method.no_decay_names + ("prototypes",)

  def __init__(self, *, backbone: nn.Module, image_size: int, focal_size: int, rand_views: int = 1,
               focal_views: int = 10, rand_crop_scale=(0.3, 1.0), focal_crop_scale=(0.05, 0.3),
               patch_drop: float = 0.15, proj_hidden_dims: Sequence[int] = (2048, 2048), proj_dim: int = 256,
               num_prototypes: int = 1024, temperature: float = 0.1, sharpen_temperature: float = 0.25,
               me_max_weight: float = 1.0, use_sinkhorn: bool = True, sinkhorn_iters: int = 3,
               tau_base: float = 0.996, ema_span: float = 1.25, prototype_grad_mult: float = 1.0,
               view_kwargs: dict | None = None, mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD,
               eval_crop_fraction: float = 0.875):
    if not isinstance(backbone, ViT):
      raise ValueError(f"MSN needs a ViT backbone (model.name='vit'), got {type(backbone).__name__}")
    for size in (image_size, focal_size):
      if size % backbone.patch_size:
        raise ValueError(f"MSN crop size {size} is not a multiple of the patch size {backbone.patch_size}")
    if not 0.0 <= patch_drop < 1.0:
      raise ValueError(f"patch_drop must be in [0, 1), got {patch_drop}")
    if rand_views < 1 or focal_views < 0:
      raise ValueError(f"MSN needs rand_views >= 1 and focal_views >= 0, got {rand_views}, {focal_views}")
    if not prototype_grad_mult > 0:
      raise ValueError(f"prototype_grad_mult must be positive, got {prototype_grad_mult}")
    self.net = MSNNet(backbone, MLP(tuple(proj_hidden_dims), proj_dim, use_bn=True, activation="gelu"))
    self.target = EMATarget(self.net, tau_base=tau_base, schedule="linear", span=ema_span)
    self.prototypes = Prototypes(num_prototypes, proj_dim)
    self.image_size, self.focal_size = int(image_size), int(focal_size)
    self.rand_views, self.focal_views = int(rand_views), int(focal_views)
    self.crop_scales = (tuple(rand_crop_scale), tuple(focal_crop_scale))
    self.patch_drop = float(patch_drop)
    self.patch_size = backbone.patch_size
    self.loss_kwargs = dict(temperature=temperature, sharpen_temperature=sharpen_temperature,
                            me_max_weight=me_max_weight, use_sinkhorn=use_sinkhorn, sinkhorn_iters=sinkhorn_iters)
    self.prototype_grad_mult = float(prototype_grad_mult)
    self.view_kwargs = dict(view_kwargs or {})
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction

  # -- data
  def crop_keys(self) -> list[str]:
    return (["target"] + [f"anchor{i}" for i in range(self.rand_views)]
            + [f"focal{i}" for i in range(self.focal_views)])

  def make_views(self, example, seed):
    img = ops.to_float(example["image"])
    sizes, counts = [self.image_size], [1 + self.rand_views]
    scales = [self.crop_scales[0]]
    if self.focal_views:
      sizes, counts, scales = sizes + [self.focal_size], counts + [self.focal_views], scales + [self.crop_scales[1]]
    crops = ops.multicrop_views(img, seed, sizes=sizes, counts=counts, scales=scales, **self.view_kwargs)
    return {k: self.normalize(c) for k, c in zip(self.crop_keys(), crops)}

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def _anchors(self, batch):
    return [batch[k] for k in self.crop_keys()[1:]]

  def _keep(self, rng, anchors):
    """One random subset of patches per resolution group (shared by the batch), or None."""
    if not self.patch_drop:
      return None
    keep = []
    for g, (start, _) in enumerate(ops.resolution_groups([a.shape[1:] for a in anchors])):
      side = anchors[start].shape[1] // self.patch_size
      num = side * side
      kept = int(math.floor(num * (1.0 - self.patch_drop)))
      keep.append(jax.random.permutation(jax.random.fold_in(rng, g), num)[:kept])
    return keep

  def init(self, rng, batch):
    anchors = [jnp.asarray(a) for a in self._anchors(batch)]
    net_rng, proto_rng = jax.random.split(rng)
    variables = self.net.init(net_rng, anchors, None, train=True)
    bound = 1.0 / math.sqrt(self.prototypes.dim)
    params = {"encoder": variables["params"],
              "prototypes": jax.random.uniform(proto_rng, (self.prototypes.num, self.prototypes.dim),
                                               jnp.float32, -bound, bound)}
    state = {"batch_stats": variables["batch_stats"],
             "target": EMATarget.init(variables["params"], variables["batch_stats"])}
    return params, state

  def loss(self, params, state, batch, rng, step):
    del step
    anchors = self._anchors(batch)
    keep = self._keep(rng, anchors)
    (_, z), bs = apply_bn(self.net, {"params": params["encoder"], "batch_stats": state["batch_stats"]},
                          anchors, keep, train=True)
    t, tgt = self.target(state["target"], [batch["target"]])
    protos = scale_grad(params["prototypes"], self.prototype_grad_mult)
    loss = losses.msn_loss(z, t, protos, **self.loss_kwargs)
    metrics = Prototypes.stats([z], params["prototypes"])
    metrics["target_prototypes_in_use"] = Prototypes.stats([t], params["prototypes"])["prototypes_in_use"]
    return loss, ({"batch_stats": bs, "target": tgt}, metrics)

  def update_state(self, params, state, step):
    return dict(state, target=self.target.update(state["target"], params["encoder"], step, self.total_steps))

  def check_metrics(self, metrics):
    used = metrics.get("prototypes_in_use")
    if used is not None and used <= 1:
      return (f"MSN collapsed: every anchor's nearest prototype is the same one (prototypes_in_use={used:.0f}); "
              "lower the learning rate or raise me_max_weight")
    return None

  def _target_variables(self, state):
    return {"params": state["target"]["params"], "batch_stats": state["target"]["batch_stats"]}

  def embed(self, params, state, images):
    return self.net.apply(self._target_variables(state), images, method=MSNNet.features)

  def embed_blocks(self, params, state, images):
    return self.net.apply(self._target_variables(state), images, method=MSNNet.block_features)

  def backbone_variables(self, params, state):  # the EMA target's encoder, as `embed`
    out = {"params": state["target"]["params"]["encoder"]}
    stats = state["target"]["batch_stats"].get("encoder")
    return {**out, "batch_stats": stats} if stats else out

  def signature(self):
    return {"method": self.name, "model": module_signature(self.net), "num_prototypes": self.prototypes.num}
