"""SCAN (Van Gansbeke et al. 2020, "SCAN: Learning to Classify Images without Labels", ECCV
2020): a pretext model, nearest neighbours mined on its features, clustering with the SCAN
loss, then self-labelling. The three stages are three runs on the one trainer:

1. **Pretext**: any run of this library (``simclr_cifar10.py:quick``, the demo), or any run
   whose backbone has this run's architecture.
2. **SCAN** (:class:`SCAN`, ``scan``): ``train.init_from`` names the pretext run; the backbone
   starts from its weights (``Method.warm_start``) and, before the first step (the trainer's
   dataset pass), the ``num_neighbors`` nearest neighbours of every training image are mined
   on the L2-normalized backbone features of the evaluation view (cosine similarity, exact:
   :func:`jax_ssl.parallel.nearest_neighbors`). The image itself is kept among the candidates
   (the official ``NeighborsDataset`` draws from ``indices[:, :num_neighbors + 1]``, self
   included); the pipeline draws one candidate per example (``partner_key``). Anchor and
   neighbour each get an augmented view; ``num_heads`` linear heads of ``num_clusters`` on the
   pooled features; the loss is the sum over heads of :func:`jax_ssl.losses.scan_loss`
   (entropy weight 5), the official ``scan_train``. Two forward passes (anchors, then
   neighbours), BatchNorm in training mode, the whole network trained (CIFAR / STL), or, with
   ``train_backbone=False`` (the official ImageNet ``update_cluster_head_only``), only the
   heads on the frozen backbone in inference mode.
3. **Self-labelling** (:class:`SCANSelfLabel`, ``scan_selflabel``): ``init_from`` names the
   SCAN run; its backbone and its best head are taken over. Confident predictions (softmax
   above 0.99) of the weak view (the evaluation view) are the targets of the strong view,
   class-balanced (:func:`jax_ssl.losses.scan_selflabel_loss`).

The best head is the one with the lowest SCAN loss (the official ``scan_evaluate``: mean
``min(-log <p_a, p_n>, 100)`` over each anchor and its ``select_neighbors`` + 1 neighbours,
self included, minus the entropy of the mean prediction, weight 1). The official evaluates it
on the validation split with neighbours mined within that split; here, so that no choice sees
the test split, on up to ``head_select_examples`` training images (all of them on the CIFAR
subset; a seeded subset on ImageNet) with neighbours mined within that set at the mining pass,
evaluation view, at the end of training (``calibrate``), and stored in the checkpoint: the
clustering report and the self-labelling run use that head.

Augmentations: ``"strong"`` (the official CIFAR / STL ``augmentation_strategy: ours``:
flip, four RandAugment-style ops of :data:`jax_ssl.data.ops.STRONG_OPS`, normalization,
Cutout of up to 16 pixels) or ``"simclr"`` (the official ImageNet SCAN: random resized crop
(0.2, 1), colour jitter 0.4 / 0.4 / 0.4 / 0.1 with p 0.8, grayscale 0.2, flip).

Deviation: the official mines neighbours on the pretext model's projection-head output (its
``ContrastiveModel`` returns the normalized head features); here on the backbone's pooled
features, which every pretext run has (and which this library's kNN evaluation scores).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow as tf

from jax_ssl import data, losses, parallel
from jax_ssl.data import ops
from jax_ssl.methods._base import Method, ParamGroup
from jax_ssl.methods._common import Normalizer, eval_input, module_signature, square_view
from jax_ssl.methods.sela import MultiHeadClassifier, SeLA


def scan_head_losses(probs: np.ndarray, neighbors: np.ndarray) -> np.ndarray:
  """The official ``scan_evaluate`` total loss of each head, float64.

  Args:
    probs: [H, M, K] cluster probabilities of M images for each head.
    neighbors: int [M, J] positions (into the M images) of each image's neighbours.

  Returns [H]: ``mean_{m, j} min(-log <p_m, p_{n(m, j)}>, 100) - entropy(max(mean_m p_m, 1e-8))``.
  """
  probs = np.asarray(probs, np.float64)
  out = []
  for p in probs:
    sim = np.einsum("mk,mjk->mj", p, p[neighbors])
    with np.errstate(divide="ignore"):
      consistency = np.mean(np.minimum(-np.log(sim), 100.0))
    c = np.maximum(p.mean(axis=0), 1e-8)
    out.append(consistency + np.sum(c * np.log(c)))
  return np.asarray(out)


class _SCANBase(Method):
  """The network, views and clustering report shared by both stages."""

  def __init__(self, *, backbone: nn.Module, num_heads: int, num_clusters: int, augmentation: str,
               image_size: int, num_strong_ops: int, cutout: int, crop_scale: Sequence[float], jitter: float,
               mean, std, eval_crop_fraction: float, collapse_share: float):
    if num_heads < 1 or num_clusters < 2:
      raise ValueError(f"{self.name} needs num_heads >= 1 and num_clusters >= 2, got {num_heads} and {num_clusters}")
    if augmentation not in ("strong", "simclr"):
      raise ValueError(f"augmentation must be 'strong' or 'simclr', got {augmentation!r}")
    if not 0 < collapse_share <= 1:
      raise ValueError(f"collapse_share must be in (0, 1], got {collapse_share}")
    self.model = MultiHeadClassifier(backbone, int(num_heads), int(num_clusters))
    self.num_heads, self.num_clusters = int(num_heads), int(num_clusters)
    self.augmentation = augmentation
    self.image_size = int(image_size)
    self.num_strong_ops, self.cutout = int(num_strong_ops), int(cutout)
    self.crop_scale, self.jitter = tuple(float(s) for s in crop_scale), float(jitter)
    self.mean, self.std = tuple(mean), tuple(std)
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction
    self.collapse_share = float(collapse_share)

  # -- data
  def augmented_view(self, image, seed):
    """One training view (TensorFlow) of a uint8 image."""
    s_size, s_view = ops.split_seed(seed, 2)
    if self.augmentation == "simclr":
      img = ops.simclr_view(ops.to_float(image), s_view, size=self.image_size, crop_scale=self.crop_scale,
                            jitter_strength=self.jitter, jitter_p=0.8, gray_p=0.2)
      return self.normalize(img)
    # The strong ops work on uint8 values of an image of the training size (CIFAR, STL: as stored).
    img = tf_round_255(square_view(ops.to_float(image), s_size, size=self.image_size,
                                   crop_fraction=self.eval_crop_fraction))
    return ops.strong_view(img, s_view, mean=self.mean, std=self.std, num_ops=self.num_strong_ops,
                           cutout_length=self.cutout)

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def _apply(self, params, state, images, *, train, mutable=False):
    v = {"params": params, "batch_stats": state["batch_stats"]}
    if mutable:
      return self.model.apply(v, images, train=train, mutable=["batch_stats"])
    return self.model.apply(v, images, train=train)

  # The network is SeLA's (backbone + linear heads): its pooled features, as SeLA's.
  embed = SeLA.embed
  embed_blocks = SeLA.embed_blocks

  def best_head(self, state):
    return state.get("best_head", jnp.zeros((), jnp.int32))

  def cluster_logits(self, params, state, images):
    """The best head's logits (the clustering report)."""
    logits = jnp.stack(self._apply(params, state, images, train=False))
    return logits[self.best_head(state)]

  def _cluster_metrics(self, logits):
    """The batch's use of the clusters by the first head: how many, and the largest's share."""
    share = jnp.mean(jax.nn.one_hot(jnp.argmax(logits, -1), self.num_clusters), axis=0)
    return {"clusters_in_use": jnp.sum(share > 0).astype(jnp.float32), "largest_cluster": jnp.max(share)}

  def check_metrics(self, metrics):
    share = metrics.get("largest_cluster")
    if share is not None and share >= self.collapse_share:
      return (f"{self.name} collapsed: {100 * share:.0f}% of the batch in one of {self.num_clusters} clusters "
              f"(collapse_share {self.collapse_share}); raise entropy_weight or lower the learning rate")
    return None

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model), "heads": [self.num_heads, self.num_clusters]}


def tf_round_255(img):
  """float [0, 1] -> float holding the nearest uint8 values (0..255)."""
  return tf.round(tf.clip_by_value(img, 0.0, 1.0) * 255.0)


class SCAN(_SCANBase):
  """SCAN's clustering stage (see the module docstring).

  Args:
    backbone: a Flax module mapping images to pooled features [N, F] (`train=` kwarg).
    num_heads, num_clusters: the linear heads (official CIFAR-10: 1 x 10; ImageNet: 10 x classes).
    num_neighbors: neighbours mined per image (official 20 on CIFAR, 50 on ImageNet); the image
      itself is a further candidate.
    entropy_weight: the SCAN loss's entropy weight (5.0).
    train_backbone: False: only the heads train, the backbone in inference mode (ImageNet).
    augmentation: "strong" or "simclr"; num_strong_ops, cutout: the strong view's ops (4) and
      Cutout side (16); crop_scale, jitter: the SimCLR view's crop scale and jitter strength.
    head_select_examples, select_neighbors: the images (at most) and neighbours per image on
      which the best head is chosen.
    collapse_share: stop when one cluster holds this share of the batches (log-step mean).
    seed: the subset of `head_select_examples`.
  """

  name = "scan"
  dataset_pass_every = ("steps", 1)  # enables the pass; `dataset_pass_due`: only before step 0
  partner_key = "neighbors"

  def __init__(self, *, backbone: nn.Module, num_heads: int = 1, num_clusters: int = 10, num_neighbors: int = 20,
               entropy_weight: float = 5.0, train_backbone: bool = True, augmentation: str = "strong",
               image_size: int = 32, num_strong_ops: int = 4, cutout: int = 16, crop_scale=(0.2, 1.0),
               jitter: float = 0.5, head_select_examples: int = 10000, select_neighbors: int = 5,
               mean=ops.CIFAR10_MEAN, std=ops.CIFAR10_STD, eval_crop_fraction: float = 1.0,
               collapse_share: float = 0.8, seed: int = 0):
    super().__init__(backbone=backbone, num_heads=num_heads, num_clusters=num_clusters, augmentation=augmentation,
                     image_size=image_size, num_strong_ops=num_strong_ops, cutout=cutout, crop_scale=crop_scale,
                     jitter=jitter, mean=mean, std=std, eval_crop_fraction=eval_crop_fraction,
                     collapse_share=collapse_share)
    if num_neighbors < 1 or select_neighbors < 1 or head_select_examples < 2:
      raise ValueError(f"scan needs num_neighbors, select_neighbors >= 1 and head_select_examples >= 2; got "
                       f"{num_neighbors}, {select_neighbors}, {head_select_examples}")
    self.num_neighbors, self.entropy_weight = int(num_neighbors), float(entropy_weight)
    self.train_backbone = bool(train_backbone)
    self.head_select_examples, self.select_neighbors = int(head_select_examples), int(select_neighbors)
    self.seed = int(seed)

  def dataset_pass_due(self, step):
    return int(step) == 0  # neighbours are mined once, on the starting (pretext) features

  def make_views(self, example, seed):
    s_a, s_n = ops.split_seed(seed, 2)
    return {"anchor": self.augmented_view(example["image"], s_a),
            "neighbor": self.augmented_view(example["partner"]["image"], s_n), "index": example["index"]}

  # -- state
  def _select_index(self):
    n = self.num_examples
    m = min(n, self.head_select_examples)
    if m == n:
      return np.arange(n, dtype=np.int32)
    return np.sort(np.random.default_rng(self.seed).permutation(n)[:m]).astype(np.int32)

  def init(self, rng, batch):
    if self.num_examples is None:
      raise ValueError("scan needs set_schedule(num_examples=N) before init (its per-example neighbours)")
    if self.num_neighbors + 1 > self.num_examples:
      raise ValueError(f"num_neighbors {self.num_neighbors} needs more than the {self.num_examples} training images")
    variables = self.model.init(rng, jnp.asarray(batch["anchor"]), train=True)
    sel = self._select_index()
    j = min(self.select_neighbors + 1, len(sel))
    return variables["params"], {
        "batch_stats": variables["batch_stats"],
        "neighbors": jnp.zeros((self.num_examples, self.num_neighbors + 1), jnp.int32),
        "neighbor_accuracy": jnp.zeros((), jnp.float32),
        "select_index": jnp.asarray(sel), "select_neighbors": jnp.zeros((len(sel), j), jnp.int32),
        "head_losses": jnp.zeros((self.num_heads,), jnp.float32), "best_head": jnp.zeros((), jnp.int32)}

  def dataset_extras(self, state, num_examples):
    if state is None:
      return {"neighbors": np.zeros((num_examples, self.num_neighbors + 1), np.int32)}
    return {"neighbors": np.asarray(state["neighbors"], np.int32)}

  # -- optimization
  def param_groups(self):
    return {"default": ParamGroup(), "backbone": ParamGroup(trainable=self.train_backbone)}

  def param_labels(self, params):
    return {k: jax.tree.map(lambda _, k=k: "backbone" if k == "backbone" else "default", v) for k, v in params.items()}

  def _logits(self, params, state, images):
    """(per-head logits, new batch_stats): the backbone frozen in inference mode when not trained."""
    if self.train_backbone:
      logits, upd = self._apply(params, state, images, train=True, mutable=True)
      return logits, upd["batch_stats"]
    feats = jax.lax.stop_gradient(self.embed(params, state, images))
    heads = [nn.Dense(self.num_clusters) for _ in range(self.num_heads)]
    return tuple(h.apply({"params": params[f"top_layer{i}"]}, feats) for i, h in enumerate(heads)), state["batch_stats"]

  def loss(self, params, state, batch, rng, step):
    del rng, step
    la, stats = self._logits(params, state, jnp.asarray(batch["anchor"]))
    ln, stats = self._logits(params, dict(state, batch_stats=stats), jnp.asarray(batch["neighbor"]))
    terms = [losses.scan_loss_terms(a, n, entropy_weight=self.entropy_weight) for a, n in zip(la, ln)]
    metrics = {"consistency": jnp.mean(jnp.stack([t["consistency"] for t in terms])),
               "entropy": jnp.mean(jnp.stack([t["entropy"] for t in terms])),
               "neighbor_accuracy": state["neighbor_accuracy"], **self._cluster_metrics(la[0])}
    return jnp.sum(jnp.stack([t["total"] for t in terms])), (dict(state, batch_stats=stats), metrics)

  # -- the mining pass
  def pass_features(self, params, state, images):
    return losses.l2_normalize(self.embed(params, state, images))

  def dataset_pass(self, params, state, features, *, step):
    del params, step
    n = self.num_examples
    idx, _ = parallel.nearest_neighbors(features, k=self.num_neighbors + 1)
    neighbors = parallel.per_example(features, idx, n)
    labels = parallel.per_example(features, features.labels, n, fill=-1)
    acc = _neighbor_accuracy(neighbors, labels)
    # The head-selection set: its rows' features to the host, one chunk at a time; neighbours within it.
    sel = np.asarray(state["select_index"])
    pos = np.full(n, -1, np.int64)
    pos[sel] = np.arange(len(sel))
    feats = np.zeros((len(sel), features.features.shape[-1]), np.float32)
    index, valid = parallel.to_host(features.index), parallel.to_host(features.valid)
    for c in range(index.shape[0]):
      keep = valid[c] & (pos[index[c]] >= 0)
      if keep.any():
        feats[pos[index[c][keep]]] = parallel.to_host(features.features[c])[keep]
    sims = feats @ feats.T
    j = state["select_neighbors"].shape[1]
    order = np.argsort(-sims, axis=1, kind="stable")[:, :j]  # self first (ties: lower position)
    return dict(state, neighbors=neighbors.astype(jnp.int32), neighbor_accuracy=acc,
                select_neighbors=jnp.asarray(order.astype(np.int32)))

  # -- the best head, at the end of training
  def calibrate(self, params, state, source, *, mesh=None):
    sel = np.asarray(state["select_index"])
    if not len(sel) or int(sel.max()) >= len(source):
      return state  # not this run's training source
    mesh = mesh or parallel.make_mesh()
    d = mesh.devices.size
    fn = parallel.make_embed_fn(lambda p, s, x: jax.nn.softmax(jnp.concatenate(self._apply(p, s, x, train=False), -1)
                                                                .reshape(x.shape[0], self.num_heads, -1), -1)
                                .reshape(x.shape[0], -1), mesh)
    subset = data.take_examples(source, sel, f"{source.name}[head selection]")
    probs, _ = parallel.extract_features(fn, self.eval_preprocess, params, state, subset,
                                         batch_size=max(d, 256 - 256 % d), mesh=mesh)
    probs = probs.reshape(len(sel), self.num_heads, self.num_clusters).transpose(1, 0, 2)
    head_losses = scan_head_losses(probs, np.asarray(state["select_neighbors"]))
    return dict(state, head_losses=jnp.asarray(head_losses, jnp.float32),
                best_head=jnp.asarray(int(np.argmin(head_losses)), jnp.int32))

  def signature(self):
    return {**super().signature(), "neighbors": self.num_neighbors}


@jax.jit
def _neighbor_accuracy(neighbors, labels):
  """Share of the mined neighbours (self excluded) with the anchor's label, over labelled anchors."""
  valid = labels >= 0
  same = (labels[neighbors[:, 1:]] == labels[:, None]).astype(jnp.float32)
  return jnp.sum(jnp.mean(same, axis=1) * valid) / jnp.maximum(jnp.sum(valid), 1)


class SCANSelfLabel(_SCANBase):
  """SCAN's self-labelling stage: one head, started from a SCAN run's backbone and best head.

  Args: as :class:`SCAN`, and
    threshold: the confidence a weak-view prediction must exceed to be a target (0.99).
    class_balance: inverse-frequency weights over the batch's confident targets (True).
  """

  name = "scan_selflabel"

  def __init__(self, *, backbone: nn.Module, num_clusters: int = 10, threshold: float = 0.99,
               class_balance: bool = True, augmentation: str = "strong", image_size: int = 32,
               num_strong_ops: int = 4, cutout: int = 16, crop_scale=(0.2, 1.0), jitter: float = 0.5,
               mean=ops.CIFAR10_MEAN, std=ops.CIFAR10_STD, eval_crop_fraction: float = 1.0,
               collapse_share: float = 0.8):
    super().__init__(backbone=backbone, num_heads=1, num_clusters=num_clusters, augmentation=augmentation,
                     image_size=image_size, num_strong_ops=num_strong_ops, cutout=cutout, crop_scale=crop_scale,
                     jitter=jitter, mean=mean, std=std, eval_crop_fraction=eval_crop_fraction,
                     collapse_share=collapse_share)
    if not 0 <= threshold < 1:
      raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    self.threshold, self.class_balance = float(threshold), bool(class_balance)

  def make_views(self, example, seed):
    weak = self.normalize(self.eval_view(example["image"]))  # the official "standard" (validation) transform
    return {"weak": weak, "strong": self.augmented_view(example["image"], seed), "index": example["index"]}

  def init(self, rng, batch):
    variables = self.model.init(rng, jnp.asarray(batch["weak"]), train=True)
    return variables["params"], {"batch_stats": variables["batch_stats"]}

  def warm_start(self, params, state, source):
    """The SCAN run's backbone and its best head (as the official ``selflabel.py``)."""
    if not isinstance(source.method, SCAN):
      raise ValueError(f"scan_selflabel starts from a scan run (train.init_from); that run is "
                       f"{source.method.name!r}")
    if source.method.num_clusters != self.num_clusters:
      raise ValueError(f"the scan run has {source.method.num_clusters} clusters and this run "
                       f"{self.num_clusters} (method_kwargs.num_clusters)")
    params, state = super().warm_start(params, state, source)
    best = int(np.asarray(source.state["best_head"]))
    return dict(params, top_layer0=source.params[f"top_layer{best}"]), state

  def loss(self, params, state, batch, rng, step):
    del rng, step
    (weak,), upd = self._apply(params, state, jnp.asarray(batch["weak"]), train=True, mutable=True)
    weak = jax.lax.stop_gradient(weak)  # the official computes the targets under no_grad, in train mode
    (strong,), upd = self._apply(params, dict(state, batch_stats=upd["batch_stats"]), jnp.asarray(batch["strong"]),
                                 train=True, mutable=True)
    terms = losses.scan_selflabel_terms(weak, strong, threshold=self.threshold, class_balance=self.class_balance)
    metrics = {"confident": terms["confident"], **self._cluster_metrics(weak)}
    return terms["total"], (dict(state, batch_stats=upd["batch_stats"]), metrics)

  def signature(self):
    return {**super().signature(), "stage": "selflabel"}
