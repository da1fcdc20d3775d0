"""SeLA: self-labelling (Asano, Rupprecht & Vedaldi 2020, "Self-labelling via simultaneous
clustering and representation learning", ICLR 2020), as the official yukimasano/self-label
``main.py`` runs it.

* Network: backbone -> ``num_heads`` linear classifiers of ``K`` clusters each on the pooled
  features (official ``top_layer0 ... top_layer{hc-1}``).
* Views: one augmented view per image per step (official ``augs=3``: random resized crop,
  random grayscale 0.2, colour jitter 0.4 on every image, horizontal flip).
* Loss: cross-entropy of every head against its pseudo-labels ``L[h, index]``, averaged over
  the heads (official ``torch.mean(torch.stack([XE(final[h], L[h, selected]) ...]))``).
* Labels start as a random balanced labelling (``i mod K``, permuted per head) and are
  re-optimized at label-optimization points spaced quadratically over training (the
  official ``optimize_times = (epochs + 1.01) * N * linspace(0, 1, nopts) ** 2``, in images
  seen; at most one per step, the first before step 0): the trainer's dataset pass extracts the
  pooled features of every training image (evaluation view, inference mode: the official
  ``PS_pre``), each head's logits are computed from them chunk by chunk, and
  :func:`jax_ssl.cluster.sela_labels` solves the equipartition-constrained transport
  (Sinkhorn-Knopp, ``P = softmax ** lam``, lambda 25, float64 log domain) one head at a time.

Cost at ImageNet scale: the features stay on the devices (1.28M x 2048 float32 = 10.5 GB
over all of them); one head's logits come to the host as float32 [N, K] (15 GB at K = 3000,
the official CPU variant holds the same matrix in float64) and Sinkhorn runs on them in
float64 chunks.

Deviation: the official run trains ``epochs + 1`` epochs and puts its optimization points
over ``epochs + 1.01`` of them; here a run is ``total_steps`` long and the points past its end
are dropped. Optimization points are a pure function of the run's length, so a resumed run
relabels exactly where an uninterrupted one does (the checkpoint holds the labels).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jax_ssl import cluster, parallel
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature
from jax_ssl.methods.deepcluster import balanced_random_labels, pseudo_label_cross_entropy


class MultiHeadClassifier(nn.Module):
  """backbone(x) -> features f; ``num_heads`` linear layers f -> logits [B, K] (a tuple)."""

  backbone: nn.Module
  num_heads: int
  num_clusters: int

  def setup(self):
    self.heads = [nn.Dense(self.num_clusters, name=f"top_layer{h}") for h in range(self.num_heads)]

  def __call__(self, x, *, train: bool):
    f = self.backbone(x, train=train)
    return tuple(head(f) for head in self.heads)

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


def optimization_steps(*, total_steps: int, steps_per_epoch: int, epochs: float, num_opts: int,
                       spacing: str = "quadratic") -> list:
  """The steps before which SeLA re-optimizes its labels (the official schedule).

  The official points are ``(epochs + 1.01) * N * u_i`` images seen, ``u_i = (i / (num_opts - 1))
  ** 2`` (``spacing="quadratic"``, official ``main.py``) or ``i / (num_opts - 1)`` ("linear", the
  official ``cifar.py``); its loop relabels before step ``s`` once ``s * batch`` has reached the
  smallest pending point and pops one point per step. In steps (``N / batch`` per epoch):
  ``s_i = max(ceil((epochs + 1.01) * u_i * steps_per_epoch), s_{i-1} + 1)``; those at or past
  `total_steps` are dropped.

  >>> optimization_steps(total_steps=40, steps_per_epoch=10, epochs=4, num_opts=5)
  [0, 4, 13, 29]
  """
  if num_opts < 1:
    raise ValueError(f"num_opts must be >= 1, got {num_opts}")
  if spacing not in ("quadratic", "linear"):
    raise ValueError(f"spacing must be 'quadratic' or 'linear', got {spacing!r}")
  u = np.linspace(0.0, 1.0, num_opts) if num_opts > 1 else np.zeros(1)
  points = (float(epochs) + 1.01) * (u ** 2 if spacing == "quadratic" else u) * steps_per_epoch
  steps, last = [], -1
  for p in points:
    s = max(int(math.ceil(p - 1e-9)), last + 1)
    if s >= total_steps:
      break
    steps.append(s)
    last = s
  return steps


class SeLA(Method):
  """SeLA.

  Args:
    backbone: a Flax module mapping images [N, H, W, 3] to features [N, F] (`train=` kwarg).
    num_heads, num_clusters: the classifier heads (official ImageNet ResNet: 10 x 3000).
    lam: the Sinkhorn-Knopp inverse temperature (25).
    num_opts: label optimizations over the run (official 100 in 400 epochs).
    spacing: "quadratic" (official main.py) or "linear" (official cifar.py).
    image_size, crop_scale: the training view (random resized crop), colour jitter strength
      `jitter` (0.4, applied to every image, random grayscale 0.2 first), flip.
    mean, std: per-channel normalisation of the views.
    eval_crop_fraction: centre-crop fraction of the evaluation / labelling view.
    seed: the initial random labelling.
  """

  name = "sela"
  dataset_pass_every = ("steps", 1)  # enables the pass; `dataset_pass_due` says when

  def __init__(self, *, backbone: nn.Module, num_heads: int = 10, num_clusters: int = 3000, lam: float = 25.0,
               num_opts: int = 100, spacing: str = "quadratic", image_size: int = 224,
               crop_scale: Sequence[float] = (0.08, 1.0), jitter: float = 0.4, gray_p: float = 0.2,
               mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD, eval_crop_fraction: float = 0.875, seed: int = 0):
    if num_heads < 1 or num_clusters < 2:
      raise ValueError(f"SeLA needs num_heads >= 1 and num_clusters >= 2, got {num_heads} and {num_clusters}")
    if lam <= 0:
      raise ValueError(f"lam must be positive, got {lam}")
    self.model = MultiHeadClassifier(backbone, int(num_heads), int(num_clusters))
    self.num_heads, self.num_clusters = int(num_heads), int(num_clusters)
    self.lam = float(lam)
    self.num_opts, self.spacing = int(num_opts), spacing
    optimization_steps(total_steps=1, steps_per_epoch=1, epochs=1, num_opts=self.num_opts,
                       spacing=spacing)  # validates
    self.image_size = int(image_size)
    self.crop_scale = tuple(float(s) for s in crop_scale)
    self.jitter, self.gray_p = float(jitter), float(gray_p)
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction
    self.seed = int(seed)
    self._steps = frozenset()
    # One head's logits of one chunk of features (its own linear layer, not all heads').
    self._head_logits = jax.jit(lambda head, f: f @ head["kernel"] + head["bias"])

  # -- schedule
  def set_schedule(self, *, steps_per_epoch, total_steps, num_examples=None):
    super().set_schedule(steps_per_epoch=steps_per_epoch, total_steps=total_steps, num_examples=num_examples)
    self._steps = frozenset(optimization_steps(
        total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
        epochs=self.total_steps / self.steps_per_epoch, num_opts=self.num_opts, spacing=self.spacing))

  @property
  def label_steps(self) -> list:
    """The steps before which the labels are re-optimized (after `set_schedule`)."""
    return sorted(self._steps)

  def dataset_pass_due(self, step):
    return int(step) in self._steps

  # -- data
  def make_views(self, example, seed):
    s = ops.split_seed(seed, 4)
    j = self.jitter  # torchvision ColorJitter(0.4, 0.4, 0.4, 0.4): every image, hue included
    img = ops.random_resized_crop(ops.to_float(example["image"]), s[0], self.image_size, scale=self.crop_scale)
    img = ops.random_grayscale(img, s[1], p=self.gray_p)
    img = ops.color_jitter(img, s[2], brightness=j, contrast=j, saturation=j, hue=min(j, 0.5))
    img = ops.random_flip(img, s[3])
    return {"image": self.normalize(img), "index": example["index"]}

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def init(self, rng, batch):
    if self.num_examples is None:
      raise ValueError("SeLA needs set_schedule(num_examples=N) before init (its per-example labels)")
    if self.num_clusters > self.num_examples:
      raise ValueError(f"num_clusters {self.num_clusters} is more than the {self.num_examples} training images")
    variables = self.model.init(rng, jnp.asarray(batch["image"]), train=True)
    keys = jax.random.split(jax.random.key(self.seed), self.num_heads)
    labels = jnp.stack([balanced_random_labels(k, self.num_examples, self.num_clusters) for k in keys])
    return variables["params"], {"batch_stats": variables["batch_stats"], "labels": labels,
                                 "label_opts": jnp.zeros((), jnp.int32)}

  def loss(self, params, state, batch, rng, step):
    del rng, step
    logits, upd = self.model.apply({"params": params, "batch_stats": state["batch_stats"]},
                                   jnp.asarray(batch["image"]), train=True, mutable=["batch_stats"])
    index = jnp.asarray(batch["index"])
    losses = [pseudo_label_cross_entropy(lg, state["labels"][h][index]) for h, lg in enumerate(logits)]
    pred = jnp.argmax(logits[0], axis=-1)
    metrics = {"label_agreement": jnp.mean((pred == state["labels"][0][index]).astype(jnp.float32)),
               "label_opts": state["label_opts"].astype(jnp.float32)}
    return jnp.mean(jnp.stack(losses)), (dict(state, batch_stats=upd["batch_stats"]), metrics)

  def embed(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=MultiHeadClassifier.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=MultiHeadClassifier.block_features)

  def cluster_logits(self, params, state, images):
    """The first head's logits for preprocessed images (the clustering report)."""
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images, train=False)[0]

  # -- dataset pass (pass_features: the pooled features, the official PS_pre)
  def dataset_pass(self, params, state, features, *, step):
    del step
    n = self.num_examples
    index, valid = parallel.to_host(features.index), parallel.to_host(features.valid)  # [C, B], once
    labels = []
    for h in range(self.num_heads):
      head = params[f"top_layer{h}"]
      logits = np.zeros((n, self.num_clusters), np.float32)
      for c in range(features.features.shape[0]):  # one chunk of rows at a time to the host
        logits[index[c][valid[c]]] = parallel.to_host(self._head_logits(head, features.features[c]))[valid[c]]
      labels.append(cluster.sela_labels(logits, lam=self.lam).astype(np.int32))
    return dict(state, labels=jnp.asarray(np.stack(labels)), label_opts=state["label_opts"] + 1)

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model),
            "heads": [self.num_heads, self.num_clusters]}
