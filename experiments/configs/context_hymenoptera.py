"""Context Prediction (Doersch et al., ICCV 2015) on the shared ants/bees photographs.

The paper's geometry: patches of 96 px, gap 48 px, jitter up to 7 px per axis, images
rescaled to 150K-450K pixels; colour projection (or `--config.method_kwargs.color=drop`) and
random down-and-up-sampling of half the patches (to as little as 100 pixels) against
shortcuts. Siamese trunk + fc6 per patch, fc7 + 8-way fc8 on the pair.
Evaluation: kNN / linear probe of ants vs bees, trunk features of the whole image (96 px centre
view), features of the 244 training photos as the memory bank, the 153 val photos as the test set.

Variants (the argument after the colon):
  quick: the CPU run.
    python experiments/main.py --config experiments/configs/context_hymenoptera.py:quick --workdir runs/context_quick
    Hardware: 2-core CPU, 1 device. ResNet-18 with the ImageNet stem (7x7/2 + max-pool: a 96 px
    patch becomes 24x24 at the first stage) at width 16, fc6 256, fc7 256, batch 32 pairs,
    400 epochs of the 244 photos (2,800 steps, 15-19 min on a 2-core CPU), AdamW 2e-3.
    The task learns slowly here and its accuracy is compute-bound (training and held-out
    accuracy equal, both still rising at the end). Held-out pair accuracy on the 153 val
    photos (chance 12.5%, random init 13.87%): 60 epochs 13-16% (lr 6e-4 / 2e-3 / 6e-3, and
    with the shortcut blockers off: no better, so they are not what holds it back), 150
    epochs 17.97%, 400 epochs 23.83% (training accuracy 25.4% at the end). Measured figures
    of this config: README.
  full: the same geometry with ResNet-18 at width 64, fc6/fc7 1024, 400 epochs, on an accelerator.
  cifar: the geometry scaled to 32 px CIFAR images (patch 10, gap 2, jitter 1: a pair spans at
    most 2*10 + 2 + 2 = 24 px; no rescaling, no down-sampling), CIFAR stem, for small-image tests.
For ImageNet see context_imagenet.py.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('quick', 'full', 'cifar')


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  if arg not in ("quick", "full", "cifar"):
    raise ValueError(f"unknown variant {arg!r} of context_hymenoptera; expected 'quick', 'full' or 'cifar'")
  quick, cifar = arg == "quick", arg == "cifar"
  c = ml_collections.ConfigDict()
  c.method = "context"
  c.seed = 0

  c.data = data_config("cifar10" if cifar else "hymenoptera")

  c.model = model_config(depth=18, width=64 if arg == "full" else 16, stem="cifar" if cifar else "imagenet")

  c.method_kwargs = ml_collections.ConfigDict()
  c.method_kwargs.patch = 10 if cifar else 96
  c.method_kwargs.gap = 2 if cifar else 48
  c.method_kwargs.jitter = 1 if cifar else 7
  c.method_kwargs.area_range = ml_collections.FieldReference(None if cifar else (150_000, 450_000), field_type=tuple)
  c.method_kwargs.color = "projection"
  c.method_kwargs.downsample_p = 0.0 if cifar else 0.5
  c.method_kwargs.min_area = 100
  c.method_kwargs.embed_dim = 1024 if arg == "full" else 256
  c.method_kwargs.head_hidden_dims = (1024,) if arg == "full" else (256,)
  c.method_kwargs.eval_size = 32 if cifar else 96
  c.method_kwargs.eval_crop_fraction = 1.0 if cifar else 0.875

  c.train = train_config(
      batch_size=128 if cifar else (32 if quick else 128),
      epochs=10 if cifar else 400,
      optimizer="adamw",
      base_lr=2e-3,
      lr_scaling="none",
      weight_decay=1e-4,
      warmup_epochs=1 if cifar else 4,
      checkpoint_every=500,
      log_every=14 if quick else 50,
  )

  c.eval = eval_config(batch_size=128)
  return c
