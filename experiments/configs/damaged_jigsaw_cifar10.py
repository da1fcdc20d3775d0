"""Completing damaged jigsaw puzzles (Kim et al., WACV 2018) on CIFAR-10.

Jigsaw's geometry scaled to CIFAR: images resized to 64 px (from 32), a random 63 px window,
3x3 cells of 21 px, a 16 px tile at a random place in each cell; P = 100 maximal-Hamming
permutations; one tile removed and the colour dropped from the other eight. One network (a
ResNet-18 trunk per tile, fc6 per tile, fc7) recovers the permutation, the missing tile's
colour pixels (a DCGAN generator on the fc6 concatenation, L2) and every tile's ab colour
(Colorization's decoder and rebalanced cross-entropy at 4 x 4 per tile). The three losses are on
from the first step (joint), chosen on the validation split over the method's default staging
(the permutation alone for the first third): see below.
Evaluation: the trunk's features of the whole 32 px image, grey and standardized like the tiles.

Variants (the argument after the colon):
  quick: the CPU run on the shared CIFAR-10 subset (4,153 train / 1,017 test).
    python experiments/main.py --config experiments/configs/damaged_jigsaw_cifar10.py:quick --workdir runs/damaged_jigsaw_quick
    Hardware: 2-core CPU, 1 device. ResNet-18 (CIFAR stem) at width 16, fc6 128, fc7 512,
    colour decoder 64, generator width 32, batch 64 puzzles, 8 epochs (520 steps). The run folder gets
    puzzles.png (held-out puzzles: damaged input / completed / original); the report adds the
    held-out permutation accuracy, the generated tile's squared error vs the mean colour's and
    the colour cross-entropy vs the prior's.
    Measured on this 2-core CPU (2026-12-03, test split): 537 s training (~75 puzzles/s), 56 s
    evaluation, 10 min 20 s wall beside a 94 s test run. kNN k=20 29.40 vs 16.91 for the
    random-init trunk, k=200 27.83 vs 18.98, linear 33.14 vs 23.30; held out: permutation
    accuracy 15.6% (chance 1%), colour cross-entropy 3.22 vs 3.67 for the prior, the generated
    tile's squared error 0.0548 vs 0.0583 for the mean colour.
    Validation split (--config.eval.split=validation, kNN k=20 / linear): joint 28.67 / 31.08,
    staged (stage_starts color=inpaint=1/3) 26.02 / 31.57, staged with inpaint weight 10
    24.10 / 31.81 (random init 18.55 / 20.96): joint kept.
  full: ResNet-18 at width 64, fc6 512, fc7 4096, P = 1000, 200 epochs; use with the full
    dataset: --config.data.kind=tfds --config.data.name=cifar10.
For ImageNet see damaged_jigsaw_imagenet.py.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config

VARIANTS = ("quick", "full")


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of damaged_jigsaw_cifar10; expected one of {VARIANTS}")
  quick = arg == "quick"
  c = ml_collections.ConfigDict()
  c.method = "damaged_jigsaw"
  c.seed = 0
  c.data = data_config("cifar10")
  c.model = model_config(depth=18, width=16 if quick else 64, stem="cifar")
  c.method_kwargs = ml_collections.ConfigDict(dict(
      num_permutations=100 if quick else 1000, permutation_seed=0, permutation_criterion="mean",
      resize=64, crop=63, grid=3, tile=16, channel_jitter=0,
      embed_dim=128 if quick else 512, head_hidden_dims=(512,) if quick else (4096,),
      color_grid=10, num_neighbors=5, sigma=5.0, lam=0.5, prior_sigma=5.0, prior_images=50000,
      color_width=64 if quick else 128, decoder_width=32 if quick else 64,
      weights=dict(jigsaw=1.0, color=1.0, inpaint=1.0),
      stage_starts=dict(jigsaw=0.0, color=0.0, inpaint=0.0),  # joint: chosen on the validation split
      eval_size=32, eval_crop_fraction=1.0, temperature=0.38))
  c.train = train_config(batch_size=64, epochs=8 if quick else 200, optimizer="adamw", base_lr=2e-3,
                         lr_scaling="none", weight_decay=1e-4, warmup_epochs=1,
                         checkpoint_every=500 if quick else 5000, log_every=25 if quick else 100)
  c.eval = eval_config(pretext_epochs=1)
  return c
