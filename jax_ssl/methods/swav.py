"""SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", NeurIPS 2020), as the official facebookresearch/swav ``main_swav.py`` runs it.

* Multi-crop views (Sec. 3.2): ``crop_counts[g]`` crops of side ``crop_sizes[g]`` per image,
  large crops first (:func:`jax_ssl.data.ops.multicrop_views`).
* Network: the backbone runs once per resolution group (consecutive crops of one size,
  concatenated along the batch), so its BatchNorm sees each group on its own; the pooled
  features of all crops are concatenated and go through the projection MLP in one call (its
  BatchNorm sees every crop), then are L2-normalised: ``z [V * B, D]``, crop-major.
* Prototypes ``C [K, D]``: a bias-free linear layer (``scores = z C^T``), kept unit-norm by
  :meth:`SwAV.project_params` after every update (and at initialisation), and frozen for the
  first ``freeze_prototypes_epochs`` epochs (their `ParamGroup` zeroes their gradient).
* Loss: :func:`jax_ssl.losses.swav_loss` (swapped prediction, Eq. 1-3; codes by Sinkhorn-Knopp,
  Sec. 3.1) over the global batch: the train step is ``jax.jit`` over a data-sharded batch,
  so the Sinkhorn sums over rows are global by construction (``axis_name=None``).
* Queue (Sec. 4 / App. A, small batches): per assignment crop, the last ``queue_length``
  detached normalised embeddings of earlier batches, newest first. It starts (all zeros) at
  epoch ``queue_start_epoch``; each step its rows join the Sinkhorn problem only once it is
  full (official test: its last row is non-zero), and after use the current batch's
  embeddings are pushed in front. The queue is one *global* array (the batch is one global
  array under ``jit``): ``queue_length`` is the total number of stored rows, i.e. the official
  ``--queue_length`` (each of the official ``world_size`` GPUs keeps ``queue_length //
  world_size`` rows of its own samples, and ``distributed_sinkhorn`` sums over all of them).
  Sinkhorn does not depend on the order of rows, so the codes are the same.

Collapse watch: the loss logs ``prototypes_in_use`` (distinct nearest prototypes of the
assignment crops' embeddings in the global batch) and ``code_entropy`` (nats; entropy of the
batch-mean one-hot assignment to the nearest prototype). Sinkhorn codes are balanced by
construction and hide a collapse, so both are measured on the scores, not on the codes.
:meth:`SwAV.check_metrics` stops the run when every step of a log interval used a single
prototype.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature, split_views
from jax_ssl.methods._parts import Prototypes, encode_multicrop, l2_normalize
from jax_ssl.models import MLP


class SwAVNet(nn.Module):
  """Multi-resolution backbone -> projection MLP -> L2-normalised embeddings; holds the prototypes.

  ``__call__(crops)`` takes the list of crop batches ``[B, H_v, W_v, 3]`` (crop order) and
  returns ``z [V * B, D]``; the prototypes are the parameter ``prototypes [K, D]`` (read by
  the loss directly from the parameters, not applied here).
  """

  backbone: nn.Module
  head: nn.Module
  num_prototypes: int
  proj_dim: int

  @nn.compact
  def __call__(self, crops: Sequence[jax.Array], *, train: bool):
    self.param("prototypes", nn.initializers.normal(1.0), (self.num_prototypes, self.proj_dim), jnp.float32)
    f = encode_multicrop(self.backbone, crops, train=train)
    return l2_normalize(self.head(f, train=train))

  def features(self, x):
    return self.backbone(x, train=False)

  def block_features(self, x):
    return self.backbone(x, train=False, return_blocks=True)


class SwAV(Method):
  """SwAV.

  Args:
    backbone: a Flax module mapping images [N, H, W, 3] to features [N, F] (`train=` kwarg).
    crop_sizes, crop_counts, crop_scales: the multi-crop groups (side, number, area-fraction
      range), large crops first. ImageNet: (224, 96), (2, 6), ((0.14, 1), (0.05, 0.14)).
    proj_hidden_dims, proj_dim: projection MLP (SwAV: 2048 hidden with BN + ReLU, 128 out).
    proj_bn: BatchNorm in the projection's hidden layers (SwAV's; SEER's 10444-8192-8192-256 head
      has none).
    num_prototypes: K (ImageNet 3000).
    temperature: softmax temperature of the predictions (0.1).
    epsilon: Sinkhorn entropic regularisation (0.05; the paper's queue runs use 0.03 or less
      on small batches, which the log-space Sinkhorn handles without overflow).
    sinkhorn_iters: Sinkhorn-Knopp iterations (3).
    assign_crops: indices of the crops whose codes are targets (the two large crops).
    queue_length: total stored embeddings per assignment crop (0: no queue); see module doc.
    queue_start_epoch: epoch from which the queue is filled (official --epoch_queue_starts).
    freeze_prototypes_epochs: the prototypes get no update for this many epochs
      (official --freeze_prototypes_niters, here in epochs of the run).
    view_kwargs: per-crop augmentation arguments of `multicrop_views` (jitter strength, blur...).
    collapse_prototypes: stop the run when the prototypes in use, averaged over a log interval,
      are at most this many (1: every step put all embeddings on one prototype).
    mean, std: per-channel normalisation of the views.
    eval_crop_fraction: centre-crop fraction of the evaluation view (ImageNet 0.875); the
      evaluation view has the side of the largest crop.
  """

  name = "swav"

  def __init__(self, *, backbone: nn.Module, crop_sizes: Sequence[int] = (224, 96),
               crop_counts: Sequence[int] = (2, 6), crop_scales=((0.14, 1.0), (0.05, 0.14)),
               proj_hidden_dims: Sequence[int] = (2048,), proj_dim: int = 128, proj_bn: bool = True,
               num_prototypes: int = 3000, temperature: float = 0.1, epsilon: float = 0.05, sinkhorn_iters: int = 3,
               assign_crops: Sequence[int] = (0, 1), queue_length: int = 0, queue_start_epoch: float = 0,
               freeze_prototypes_epochs: float = 1.0, view_kwargs: dict | None = None,
               collapse_prototypes: int = 1, mean=ops.IMAGENET_MEAN, std=ops.IMAGENET_STD,
               eval_crop_fraction: float = 0.875):
    self.crop_spec = ops.multicrop_spec(crop_sizes, crop_counts, crop_scales)
    self.crop_sizes = tuple(int(s) for s in crop_sizes)
    self.crop_counts = tuple(int(c) for c in crop_counts)
    self.crop_scales = tuple(tuple(float(v) for v in s) for s in crop_scales)
    self.num_crops = len(self.crop_spec)
    if self.num_crops < 2:
      raise ValueError(f"SwAV needs at least 2 crops, got crop_counts={list(crop_counts)}")
    self.assign_crops = tuple(int(a) for a in assign_crops)
    if not self.assign_crops or any(not 0 <= a < self.num_crops for a in self.assign_crops):
      raise ValueError(f"assign_crops {list(assign_crops)} must index the {self.num_crops} crops")
    if len({self.crop_spec[a][0] for a in self.assign_crops}) != 1:
      raise ValueError(f"assign_crops {list(assign_crops)} must be crops of one size")
    if queue_length < 0:
      raise ValueError(f"queue_length must be >= 0, got {queue_length}")
    if epsilon <= 0 or temperature <= 0:
      raise ValueError(f"epsilon and temperature must be positive, got {epsilon} and {temperature}")
    self.prototypes = Prototypes(num_prototypes, proj_dim)
    self.model = SwAVNet(backbone, MLP(tuple(proj_hidden_dims), proj_dim, use_bn=bool(proj_bn)),
                         num_prototypes=int(num_prototypes), proj_dim=int(proj_dim))
    self.num_prototypes = int(num_prototypes)
    self.proj_dim = int(proj_dim)
    self.temperature = float(temperature)
    self.epsilon = float(epsilon)
    self.sinkhorn_iters = int(sinkhorn_iters)
    self.queue_length = int(queue_length)
    self.queue_start_epoch = float(queue_start_epoch)
    self.freeze_prototypes_epochs = float(freeze_prototypes_epochs)
    self.view_kwargs = dict(view_kwargs or {})
    self.collapse_prototypes = int(collapse_prototypes)
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction
    self.freeze_steps = 0
    self.queue_start_step = 0

  # -- schedule
  def set_schedule(self, *, steps_per_epoch, total_steps, num_examples=None):
    super().set_schedule(steps_per_epoch=steps_per_epoch, total_steps=total_steps, num_examples=num_examples)
    self.freeze_steps = int(round(self.freeze_prototypes_epochs * self.steps_per_epoch))
    self.prototypes.frozen_steps = self.freeze_steps
    self.queue_start_step = int(round(self.queue_start_epoch * self.steps_per_epoch))

  # -- data
  def crop_keys(self):
    return [f"crop{i}" for i in range(self.num_crops)]

  def make_views(self, example, seed):
    img = ops.to_float(example["image"])
    crops = ops.multicrop_views(img, seed, sizes=self.crop_sizes, counts=self.crop_counts,
                                scales=self.crop_scales, **self.view_kwargs)
    return {k: self.normalize(c) for k, c in zip(self.crop_keys(), crops)}

  def eval_view(self, image):
    return eval_input(image, size=self.crop_sizes[0], normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  def _crops(self, batch):
    missing = [k for k in self.crop_keys() if k not in batch]
    if missing:
      raise KeyError(f"SwAV batch lacks crops {missing}; it has {sorted(batch)}")
    return [jnp.asarray(batch[k]) for k in self.crop_keys()]

  def init(self, rng, batch):
    variables = self.model.init(rng, self._crops(batch), train=True)
    state = {"batch_stats": variables["batch_stats"]}
    if self.queue_length:
      state["queue"] = jnp.zeros((len(self.assign_crops), self.queue_length, self.proj_dim), jnp.float32)
    return variables["params"], state

  def loss(self, params, state, batch, rng, step):
    del rng
    variables = {"params": params, "batch_stats": state["batch_stats"]}
    z, updates = self.model.apply(variables, self._crops(batch), train=True, mutable=["batch_stats"])
    z_crops = split_views(z, self.num_crops)
    prototypes = params["prototypes"]
    kw = dict(temperature=self.temperature, epsilon=self.epsilon, num_iters=self.sinkhorn_iters,
              assign_crops=self.assign_crops)
    new_state = {"batch_stats": updates["batch_stats"]}
    metrics = {}
    if self.queue_length:
      queue = state["queue"]
      # Official: the queue exists from `epoch_queue_starts` and joins Sinkhorn once its last
      # row is non-zero (full); both assignment crops' queues fill in lockstep.
      full = jnp.any(queue[:, -1, :] != 0)
      started = step >= self.queue_start_step
      use = full & started
      loss = jax.lax.cond(use,
                          lambda zc, p, q: losses.swav_loss(zc, p, queue=list(q), **kw),
                          lambda zc, p, q: losses.swav_loss(zc, p, **kw),
                          z_crops, prototypes, queue)
      # Push after use, newest first: queue[i, B:] = queue[i, :-B]; queue[i, :B] = z_a.
      fresh = jnp.stack([jax.lax.stop_gradient(z_crops[a]) for a in self.assign_crops])
      pushed = jnp.concatenate([fresh, queue], axis=1)[:, :self.queue_length]
      new_state["queue"] = jnp.where(started, pushed, queue)
      metrics["queue_used"] = use.astype(jnp.float32)
    else:
      loss = losses.swav_loss(z_crops, prototypes, **kw)
    metrics.update(Prototypes.stats([z_crops[a] for a in self.assign_crops], prototypes))
    return loss, (new_state, metrics)

  def embed(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=SwAVNet.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, "batch_stats": state["batch_stats"]}, images,
                            method=SwAVNet.block_features)

  # -- optimization (official: `p.grad = None` for the prototypes during the first iterations)
  def param_groups(self):
    return self.prototypes.param_groups()

  def param_labels(self, params):
    return self.prototypes.param_labels(params)

  def project_params(self, params):
    return self.prototypes.project(params)

  # -- run hooks
  def check_metrics(self, metrics):
    in_use = metrics.get("prototypes_in_use")
    if in_use is not None and in_use <= self.collapse_prototypes:
      return (f"SwAV collapsed: the embeddings of the batch use {in_use:.1f} of {self.num_prototypes} "
              f"prototypes (code entropy {metrics.get('code_entropy', float('nan')):.3f} nats); "
              f"lower the learning rate, raise epsilon or freeze the prototypes for longer")
    return None

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model),
            "crops": [list(self.crop_sizes), list(self.crop_counts)],
            "queue": [len(self.assign_crops), self.queue_length] if self.queue_length else None}
