"""The published supervised protocols on a pretrained backbone: linear evaluation with SGD, fine-tuning.

Both train a classifier with labels on augmented views, mini-batched and sharded over every
device and process (the batch axis over the mesh, parameters replicated), and report top-1 on
the centre-crop test view.

* **Linear evaluation** (`linear_sgd`, SimCLR appendix B.6 / BYOL appendix C.1): the backbone is
  frozen (inference mode, BatchNorm statistics fixed), a linear layer on its features is
  trained with SGD + Nesterov momentum 0.9, lr `base_lr x batch / 256` on a cosine schedule, no
  weight decay by default, on random resized crops (scale 0.08-1) + flips; 90 epochs at batch
  1024 on ImageNet (100 on CIFAR) in the papers.
* **Fine-tuning** (`finetune`): every parameter trains (BatchNorm in training mode), with SGD
  (SimCLR's semi-supervised protocol: Nesterov, no weight decay, 1% / 10% of the labels) or
  AdamW with layer-wise lr decay for ViTs (MAE appendix A.3: lr scale `decay^(L + 1 - i)` for
  block i, 0 for the patch embedding / tokens, L + 1 for the head).

The training view is the method's own evaluation preprocessing (`preprocess`: centre crop,
resize, normalization) applied to a random resized crop + flip of the raw image at the
evaluation size, so the network sees inputs normalized as in pretraining. Everything is seeded:
the same checkpoint gives the same number on the same hardware.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow as tf

from jax_ssl import data, parallel
from jax_ssl.data import ArraySource, ops


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
  """One supervised protocol's hyperparameters (see the module docstring for the published ones).

  Attributes:
    epochs: passes over the labelled training split.
    batch_size: global batch (rounded down to a multiple of the devices and capped at the split).
    base_lr: lr at batch 256 (`lr = base_lr x batch / 256`).
    optimizer: "sgd" (Nesterov momentum) or "adamw".
    momentum: SGD momentum; AdamW's b1 is 0.9.
    weight_decay: decoupled (AdamW) or L2-in-the-update (SGD) weight decay, not on biases / norms.
    warmup_epochs: linear warm-up before the cosine.
    layer_decay: ViT layer-wise lr decay (1.0: off).
    crop_scale: the random resized crop's area range.
    label_smoothing: of the cross-entropy.
    feature_norm: a BatchNorm without scale and bias between the features and the linear layer
      (MAE's linear probing protocol; features of any scale then train at the usual lr).
    seed: data order, augmentation and head initialization.
  """

  epochs: float = 100
  batch_size: int = 256
  base_lr: float = 0.1
  optimizer: str = "sgd"
  momentum: float = 0.9
  weight_decay: float = 0.0
  warmup_epochs: float = 0.0
  layer_decay: float = 1.0
  crop_scale: tuple = (0.08, 1.0)
  label_smoothing: float = 0.0
  feature_norm: bool = False
  seed: int = 0

  @classmethod
  def from_dict(cls, d) -> "ProtocolConfig":
    d = dict(d or {})
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
      raise ValueError(f"unknown protocol setting(s) {', '.join(unknown)}; accepted: "
                       f"{', '.join(f.name for f in dataclasses.fields(cls))}")
    if "crop_scale" in d:
      d["crop_scale"] = tuple(d["crop_scale"])
    return cls(**d)


class _Classifier(nn.Module):
  backbone: nn.Module
  num_classes: int
  frozen: bool
  feature_norm: bool = False

  @nn.compact
  def __call__(self, x, *, train: bool):
    f = self.backbone(x, train=train and not self.frozen)
    if self.frozen:
      f = jax.lax.stop_gradient(f)
    f = f.astype(jnp.float32)
    if self.feature_norm:
      f = nn.BatchNorm(use_running_average=not train, use_scale=False, use_bias=False, momentum=0.9,
                       epsilon=1e-6, name="head_norm")(f)
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="head")(f)


def linear_sgd(module, variables, train_source: ArraySource, test_source: ArraySource, *,
               preprocess: Callable, config: ProtocolConfig, mesh=None, progress: Callable | None = None) -> dict:
  """Top-1 (%) of a linear layer trained with SGD on the frozen backbone (`module`, `variables`).

  Returns {"top1", "steps", "batch_size", "lr", "final_train_loss", "train_examples", "params",
  "batch_stats"} (the last two: the trained {"backbone", "head"} trees, on the host).
  `progress(step, total, loss, accuracy)` is called once per epoch.
  """
  return _train_and_test(module, variables, train_source, test_source, preprocess=preprocess, config=config,
                         frozen=True, mesh=mesh, progress=progress)


def finetune(module, variables, train_source: ArraySource, test_source: ArraySource, *,
             preprocess: Callable, config: ProtocolConfig, mesh=None, progress: Callable | None = None) -> dict:
  """Top-1 (%) of the whole network (`module` from `variables`, plus a linear head) trained with
  labels; returns what `linear_sgd` returns."""
  return _train_and_test(module, variables, train_source, test_source, preprocess=preprocess, config=config,
                         frozen=False, mesh=mesh, progress=progress)


def vit_layer_ids(params) -> dict:
  """Per-leaf layer index of a ViT classifier's params for layer-wise lr decay (MAE's
  `get_layer_id_for_vit`): patch embedding, class token and position embeddings 0, block i
  i + 1, everything after the blocks (final norm, head) L + 1. Returns (ids tree, L)."""
  flat = flax.traverse_util.flatten_dict(params)
  blocks = {int(m.group(1)) for k in flat for n in k if (m := re.fullmatch(r"encoderblock_(\d+)", n))}
  depth = max(blocks) + 1 if blocks else 0

  def layer(path):
    for n in path:
      m = re.fullmatch(r"encoderblock_(\d+)", n)
      if m:
        return int(m.group(1)) + 1
    if any(n in ("embedding", "cls", "pos_embedding", "cls_pos_embedding") for n in path):
      return 0
    return depth + 1

  return flax.traverse_util.unflatten_dict({k: layer(k) for k in flat}), depth


def _decay_mask(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, p: p.ndim > 1 and not any(getattr(k, "key", "") in ("cls", "pos_embedding", "cls_pos_embedding")
                                             for k in path), params)


def _optimizer(config: ProtocolConfig, params, total_steps: int, batch: int, frozen: bool):
  lr = config.base_lr * batch / 256
  warmup = int(round(config.warmup_epochs / config.epochs * total_steps)) if config.epochs else 0
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1), 0.0) if warmup else \
      optax.cosine_decay_schedule(lr, max(total_steps, 1))
  if config.optimizer == "sgd":
    tx = optax.chain(optax.add_decayed_weights(config.weight_decay, _decay_mask(params)) if config.weight_decay
                     else optax.identity(), optax.sgd(schedule, momentum=config.momentum, nesterov=True))
  elif config.optimizer == "adamw":
    tx = optax.adamw(schedule, b1=0.9, b2=0.999, weight_decay=config.weight_decay, mask=_decay_mask(params))
  else:
    raise ValueError(f"protocol optimizer must be 'sgd' or 'adamw', got {config.optimizer!r}")
  if frozen:  # only the head trains
    labels = lambda p: {k: jax.tree.map(lambda _, k=k: "train" if k == "head" else "frozen", v) for k, v in p.items()}
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
  elif config.layer_decay != 1.0:
    ids, depth = vit_layer_ids(params)
    if depth == 0:
      raise ValueError("layer_decay is for ViT backbones (encoderblock_i); set it to 1.0 for this backbone")
    scales = jax.tree.map(lambda i: config.layer_decay ** (depth + 1 - i), ids)
    tx = optax.chain(tx, _scale_by_tree(scales))
  return tx


def _scale_by_tree(scales):
  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, s: u * s, updates, scales), state

  return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def _train_and_test(module, variables, train_source, test_source, *, preprocess, config: ProtocolConfig,
                    frozen: bool, mesh, progress):
  mesh = mesh or parallel.make_mesh()
  per = mesh.size
  n = len(train_source)
  batch = min(int(config.batch_size), (n // per) * per)
  if batch < per:
    raise ValueError(f"{n} labelled training examples are fewer than the {per} devices")
  if config.epochs <= 0:
    raise ValueError(f"protocol epochs must be positive, got {config.epochs}")
  num_classes = train_source.num_classes
  spe = data.steps_per_epoch(n, batch)
  total = max(1, int(round(config.epochs * spe)))

  size = int(preprocess(tf.zeros([8, 8, 3], tf.uint8)).shape[0])

  def view(example, seed):
    s_crop, s_flip = ops.split_seed(seed, 2)
    img = ops.random_resized_crop(ops.to_float(example["image"]), s_crop, size, scale=config.crop_scale)
    img = ops.random_flip(img, s_flip)
    img = tf.cast(tf.round(tf.clip_by_value(img, 0.0, 1.0) * 255.0), tf.uint8)
    return {"image": preprocess(img), "label": example["label"]}

  model = _Classifier(module, num_classes, frozen, bool(config.feature_norm))
  ds = data.train_dataset(train_source, view, global_batch=batch, seed=config.seed,
                          process_index=jax.process_index(), process_count=jax.process_count())
  it = data.as_numpy_iterator(ds, train_source)
  first = next(it)
  head_vars = model.init(jax.random.key(config.seed), jnp.asarray(first["image"][:1]), train=False)
  params = {"backbone": variables["params"], "head": head_vars["params"]["head"]}
  stats = {"backbone": variables["batch_stats"]} if "batch_stats" in variables else {}
  if "head_norm" in head_vars.get("batch_stats", {}):
    stats["head_norm"] = head_vars["batch_stats"]["head_norm"]
  tx = _optimizer(config, params, total, batch, frozen)
  rep, dat = parallel.replicated(mesh), parallel.batch_sharding(mesh)
  # A fresh replicated copy: the step donates its inputs, and the caller's arrays must survive.
  params, stats = jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=rep)((params, stats))
  opt_state = jax.device_put(tx.init(params), rep)

  def loss_fn(p, s, x, y):
    v = {"params": p, **({"batch_stats": s} if s else {})}
    if s and (not frozen or "head_norm" in s):  # a frozen backbone's statistics come back unchanged
      logits, new = model.apply(v, x, train=True, mutable=["batch_stats"])
      s = new["batch_stats"]
    else:
      logits = model.apply(v, x, train=False)
    onehot = optax.smooth_labels(jax.nn.one_hot(y, num_classes), config.label_smoothing) \
        if config.label_smoothing else jax.nn.one_hot(y, num_classes)
    loss = optax.softmax_cross_entropy(logits, onehot).mean()
    return loss, (s, jnp.mean(jnp.argmax(logits, -1) == y))

  def step(p, s, o, x, y):
    (loss, (s, acc)), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, y)
    updates, o = tx.update(g, o, p)
    return optax.apply_updates(p, updates), s, o, loss, acc

  step = jax.jit(step, in_shardings=(rep, rep, rep, dat, dat), out_shardings=(rep, rep, rep, rep, rep),
                 donate_argnums=(0, 1, 2))
  batch_iter = itertools.chain([first], it)
  losses = []
  for i in range(total):
    b = parallel.shard_batch(next(batch_iter), mesh)
    params, stats, opt_state, loss, acc = step(params, stats, opt_state, b["image"], b["label"])
    if progress is not None and (i + 1) % max(1, spe) == 0:
      progress(i + 1, total, float(loss), float(acc))
    losses.append(loss)
  train_loss = float(np.mean(jax.device_get(losses[-max(1, spe):])))

  def logits_fn(p, s, x):
    return model.apply({"params": p, **({"batch_stats": s} if s else {})}, x, train=False)

  logits, labels = parallel.extract_features(parallel.make_embed_fn(logits_fn, mesh), preprocess, params, stats,
                                             test_source, batch_size=max(per, (256 // per) * per), mesh=mesh)
  top1 = 100.0 * float(np.mean(np.argmax(logits, -1) == labels))
  return {"top1": top1, "steps": total, "batch_size": batch, "lr": config.base_lr * batch / 256,
          "final_train_loss": train_loss, "train_examples": n, "params": jax.device_get(params),
          "batch_stats": jax.device_get(stats)}
