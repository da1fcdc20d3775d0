"""Pieces shared by the config files (imported as `experiments.configs._common`)."""

import os

import ml_collections

# The shared data folder beside the repository root (../shared/data).
SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))

# dataset -> (kind, folder under SHARED_DATA or None, TFDS name, test split, mean, std)
_CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_DATASETS = {
    "cifar10": ("folder", "cifar10_subset", "cifar10", "test", *_CIFAR_STATS),
    "hymenoptera": ("folder", "hymenoptera_data", "hymenoptera", "val", *_IMAGENET_STATS),
    "imagenet2012": ("tfds", None, "imagenet2012", "validation", *_IMAGENET_STATS),
}


def check_train_length(train_cfg) -> None:
  """Raises ValueError for a run length that cannot train (non-positive epochs or steps, negative
  warm-up); cheap, so the command line checks it before loading TensorFlow."""
  if train_cfg.epochs <= 0:
    raise ValueError(f"config.train.epochs must be positive, got {train_cfg.epochs}")
  if train_cfg.warmup_epochs < 0:
    raise ValueError(f"config.train.warmup_epochs must be >= 0, got {train_cfg.warmup_epochs}")
  steps = train_cfg.get("steps")
  if steps is not None and steps <= 0:
    raise ValueError(f"config.train.steps must be positive, got {steps}")


def data_config(dataset: str) -> ml_collections.ConfigDict:
  """The `data` block for one of the datasets the configs use.

  "cifar10" and "hymenoptera" read the shared subsets as image folders (ROOT/SPLIT/CLASS/IMAGE);
  switch to TFDS by name with --config.data.kind=tfds (--config.data.name=cifar10).
  "imagenet2012" reads TFDS (--config.data.data_dir=... for a prepared copy; path unused).
  """
  if dataset not in _DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(_DATASETS)}")
  kind, folder, name, test_split, mean, std = _DATASETS[dataset]
  d = ml_collections.ConfigDict()
  d.kind = kind  # "folder" (ROOT/SPLIT/CLASS/IMAGE) or "tfds" (by name)
  d.path = os.path.join(SHARED_DATA, folder) if folder else ml_collections.FieldReference(None, field_type=str)
  d.name = name
  d.data_dir = ml_collections.FieldReference(None, field_type=str)
  d.download = False
  d.train_split = "train"  # pretraining images (labelled or not)
  # Folders: "auto" (images directly in ROOT/SPLIT: unlabeled, any depth; else class folders),
  # "folders" (ROOT/SPLIT/CLASS/IMAGE) or "none" (every image below ROOT/SPLIT, unlabeled).
  d.labels = "auto"
  # Folders: "memory" (decoded / encoded in host memory, every file checked at load), "files"
  # (paths only, read per example: memory independent of the dataset's size) or "auto"
  # ("memory" up to jax_ssl.data.MAX_IN_MEMORY_BYTES of image files).
  d.storage = "auto"
  # The labelled split for the kNN memory bank / probe training (None: train_split), e.g.
  # "train" when pretraining on STL-10's "unlabelled".
  d.eval_train_split = ml_collections.FieldReference(None, field_type=str)
  d.test_split = test_split
  d.mean = mean
  d.std = std
  return d


def model_config(*, depth: int, width: int, stem: str, dtype: str = "float32") -> ml_collections.ConfigDict:
  """The `model` block: a ResNet of `depth` (18/34/50...) with base `width`, "cifar" or "imagenet" stem.

  `name` picks the backbone (`jax_ssl.models.build_backbone`); the other keys are its arguments.
  """
  return ml_collections.ConfigDict(dict(name="resnet", depth=depth, width=width, stem=stem, dtype=dtype))


def vit_config(*, variant: str, pool: str = "cls", posemb: str = "sincos2d",
               dtype: str = "float32") -> ml_collections.ConfigDict:
  """The `model` block for a ViT: `variant` "Ti/16", "S/16", "B/16", ... (`jax_ssl.models.vit_from_variant`)."""
  return ml_collections.ConfigDict(dict(name="vit", variant=variant, pool=pool, posemb=posemb, dtype=dtype))


def train_config(*, batch_size: int, epochs: int, optimizer: str, base_lr: float, lr_scaling: str,
                 weight_decay: float, warmup_epochs: float, checkpoint_every: int, log_every: int,
                 momentum: float = 0.9, keep_checkpoints: int = 3,
                 max_nonfinite_steps: int = 10, online_probe: bool = False,
                 online_probe_lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999,
                 grad_clip_norm: float | None = None, weight_decay_end: float | None = None,
                 schedule_scale: float = 1.0, end_lr: float = 0.0, init_from: str = "") -> ml_collections.ConfigDict:
  """The `train` block (every field explicit at the call site except the defaults).

  lr_scaling: "linear" (lr = base_lr * batch / 256) or "none".
  online_probe: train a linear classifier on stop-gradient features of the batches' labels
    beside the method (`jax_ssl.train.OnlineProbe`, Adam at `online_probe_lr`); logs
    online_probe/top1. Off by default: it costs one extra forward pass per step.
  steps: unset (None): the run is `epochs` long. Set (`--config.train.steps=20`): the run is
    that many steps and the schedule keeps its shape (warm-up `warmup_epochs / epochs` of the
    run), e.g. a smoke run on ImageNet.
  b1, b2: AdamW's betas (MAE: 0.9, 0.95).
  grad_clip_norm: clip the global gradient norm to this before the optimizer (None: off).
  weight_decay_end: None: constant `weight_decay`; else a cosine from `weight_decay` to this
    over the schedule (MSN / DINO: 0.04 -> 0.4).
  schedule_scale: the cosine schedules (lr, weight decay) span `schedule_scale` times the run,
    so they stop short of their end (MSN's `ipe_scale` 1.25); 1.0: they end with the run.
  end_lr: the learning rate the cosine decays to (MSN 1e-6).
  init_from: another run's workdir: a fresh run starts from its newest checkpoint
    (`Method.warm_start`: its backbone; SCAN's self-labelling also its best head). Ignored
    when this run resumes from its own checkpoint. "": from random initialization.
  """
  return ml_collections.ConfigDict(dict(
      steps=ml_collections.FieldReference(None, field_type=int), batch_size=batch_size, epochs=epochs, optimizer=optimizer, base_lr=base_lr, lr_scaling=lr_scaling,
      weight_decay=weight_decay, warmup_epochs=warmup_epochs, momentum=momentum,
      checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, log_every=log_every,
      max_nonfinite_steps=max_nonfinite_steps, online_probe=online_probe, online_probe_lr=online_probe_lr,
      b1=b1, b2=b2, grad_clip_norm=ml_collections.FieldReference(grad_clip_norm, field_type=float),
      weight_decay_end=ml_collections.FieldReference(weight_decay_end, field_type=float),
      schedule_scale=schedule_scale, end_lr=end_lr, init_from=init_from))


def eval_config(*, batch_size: int = 512, baselines: bool = True, per_block: bool = False,
                linear_iters: int = 500, pretext_epochs: int = 4, split: str = "test",
                val_fraction: float = 0.1, linear_epochs: float = 100.0, linear_batch: int = 256,
                finetune_epochs: float = 30.0, finetune_batch: int = 256) -> ml_collections.ConfigDict:
  """The frozen-feature evaluation block: kNN (k = 20, 200, temperature 0.07) and linear probe.

  baselines: also evaluate the random-init network and pixels (cheap on small data).
  per_block: one kNN row per ResNet stage (RotNet's per-block probes).
  pretext_epochs: passes over the test split to measure a pretext classifier's held-out
    accuracy (RotNet, Context Prediction, Jigsaw; other methods ignore it); 0 skips it.
  monitor_every: run a kNN monitor (`jax_ssl.evaluate.KnnMonitor`, k = 20) every this many
    steps during training, memory bank and queries from a validation split of the training
    images (`val_fraction`, `val_seed`); 0 (default) is off.
  split: "test" (report the test split) or "validation": hold a seeded, class-balanced
    `val_fraction` of the training images out of pretraining and evaluate on it (choose
    recipes with --config.eval.split=validation; the test split is only reported).
  linear_epochs, linear_batch, finetune_epochs, finetune_batch: the supervised protocols'
    length and global batch (`linear_sgd`, `finetune` blocks; CPU quick configs shorten them).
  """
  e = ml_collections.ConfigDict()
  e.batch_size = batch_size
  e.knn_ks = (20, 200)
  e.knn_temperature = 0.07
  e.linear = True
  e.linear_iters = linear_iters
  e.baselines = baselines
  e.per_block = per_block
  e.pretext_epochs = pretext_epochs
  e.split = split
  e.val_fraction = val_fraction
  e.val_seed = 0
  e.monitor_every = 0
  # Transfer: evaluate on another dataset than the one pretrained on (kNN memory bank / probe
  # training from transfer.train_split, report on transfer.test_split), e.g.
  # --config.eval.transfer.path=DIR --config.eval.transfer.test_split=val. The network keeps
  # its pretraining normalization (data.mean / data.std). Unset (None): config.data.
  e.transfer = ml_collections.ConfigDict(dict(
      kind=ml_collections.FieldReference(None, field_type=str),
      path=ml_collections.FieldReference(None, field_type=str),
      name=ml_collections.FieldReference(None, field_type=str),
      train_split="train", test_split="test"))
  # The published supervised protocols (--mode linear / --mode finetune; jax_ssl.evaluate):
  # SimCLR / BYOL linear evaluation (SGD + Nesterov, lr 0.1 x B / 256, cosine, no weight decay,
  # random resized crop + flip; 100 epochs on CIFAR, 90 at batch 1024 on ImageNet) and SimCLR's
  # semi-supervised fine-tuning (Nesterov, lr 0.05 x B / 256, no weight decay; 30 epochs with
  # 10% of the labels, 60 with 1%). ViT configs override with MAE's (AdamW, layer decay).
  e.linear_sgd = ml_collections.ConfigDict(dict(
      epochs=linear_epochs, batch_size=linear_batch, base_lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=0.0,
      warmup_epochs=0.0, layer_decay=1.0, crop_scale=(0.08, 1.0), label_smoothing=0.0, feature_norm=False, seed=0))
  e.finetune = ml_collections.ConfigDict(dict(
      epochs=finetune_epochs, batch_size=finetune_batch, base_lr=0.05, optimizer="sgd", momentum=0.9, weight_decay=0.0,
      warmup_epochs=0.0, layer_decay=1.0, crop_scale=(0.08, 1.0), label_smoothing=0.0, feature_norm=False, seed=0,
      label_fraction=0.1, baseline=True))
  return e
