"""Colorization (Zhang, Isola & Efros, ECCV 2016) on CIFAR-10: classify each pixel's ab colour from L.

Variants (the argument after the colon):
  quick: the CPU run on the shared CIFAR-10 subset (4,153 train / 1,017 test).
    python experiments/main.py --config experiments/configs/colorization_cifar10.py:quick --workdir runs/colorization_quick
    Hardware: 2-core CPU, 1 device. ResNet-18 (CIFAR stem, one input channel: L - 50) at width
    16, logits for the 261 in-gamut ab bins on the 8 x 8 quarter-resolution grid, batch 128,
    15 epochs = 480 steps, AdamW 2e-3 with 1 warm-up epoch and cosine decay (the paper's Adam
    3e-5 at batch 40 is for 450k iterations); flips only (the paper's CIFAR-size images need no
    crop). The colour prior comes from the training images (all 4,153), lambda 0.5.
    The run folder gets colorizations.png (held-out test images: L only / annealed mean T=0.38 /
    original); the report adds the held-out rebalanced cross-entropy ("color_ce") and that of
    predicting the prior at every pixel ("prior_ce").
    Measured on this 2-core CPU (alone, one device, 2026-12-03): 271 s training (~240 images/s),
    35-42 s evaluation, 5 min 40 s in all. Test split: kNN k=20 31.37 vs 18.78 for the random-init
    trunk on the same L input (+12.6; L-channel pixels 31.37), linear 36.28 vs 24.98 (+11.3);
    held-out rebalanced cross-entropy 3.70 vs 4.31 for predicting the prior at every pixel (-14%;
    random init 5.26). lr screened on the validation split (--config.eval.split=validation, 10%
    of the training images): 2e-3 kNN 30.36 / linear 36.63 / color_ce 3.73; 5e-3 29.40 / 37.59 /
    3.78 (random init 18.80 / 21.69, prior 4.44).
  full: the paper's optimizer (Sec. 3: Adam, beta1 0.9, beta2 0.99, weight decay 1e-3, lr 3e-5,
    batch 40) for 200 epochs of CIFAR-10 at width 64; use with the full dataset:
    --config.data.kind=tfds --config.data.name=cifar10.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config

VARIANTS = ("quick", "full")

_BASE_TRAIN = dict(batch_size=128, epochs=15, optimizer="adamw", base_lr=2e-3, lr_scaling="none", weight_decay=1e-4,
                   warmup_epochs=1, checkpoint_every=240, log_every=16)
_FULL_TRAIN = dict(batch_size=40, epochs=200, base_lr=3e-5, weight_decay=1e-3, b2=0.99, warmup_epochs=0,
                   checkpoint_every=5000, log_every=100)


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of colorization_cifar10; expected one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.method = "colorization"
  c.seed = 0
  c.data = data_config("cifar10")
  c.model = model_config(depth=18, width=16 if arg == "quick" else 64, stem="cifar")
  c.method_kwargs = ml_collections.ConfigDict(dict(
      image_size=32, grid=10, num_neighbors=5, sigma=5.0, lam=0.5, prior_sigma=5.0, prior_images=50000,
      decoder_width=128, flip_p=0.5, eval_crop_fraction=1.0, temperature=0.38))
  c.train = train_config(**{**_BASE_TRAIN, **(_FULL_TRAIN if arg == "full" else {})})
  c.eval = eval_config(pretext_epochs=1)
  return c
