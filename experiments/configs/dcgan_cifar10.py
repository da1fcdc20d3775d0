"""DCGAN discriminator features (Radford, Metz & Chintala, ICLR 2016) on CIFAR-10.

The paper's networks at 32 px (`full`; `quick` halves the widths): discriminator 64-128-256 stride-2 4x4 convolutions (BatchNorm
but on the first, LeakyReLU 0.2; 32 -> 4 px) and a 4x4 convolution to the logit; generator
z (100, uniform) -> 4 x 4 x 256 -> 128 -> 64 -> 3 (transposed convolutions, BatchNorm, ReLU,
tanh); N(0, 0.02) init; Adam 2e-4, beta1 0.5, constant, for both networks; images in [-1, 1].
Features: every discriminator layer max-pooled to 4 x 4 and concatenated ((64 + 128 + 256) x 16
= 7,168), BatchNorm statistics recomputed over the training images (`DCGAN.calibrate`).
The run folder gets samples.png (64 generated images).

Variants (the argument after the colon):
  quick: the CPU run on the shared CIFAR-10 subset (4,153 train / 1,017 test).
    python experiments/main.py --config experiments/configs/dcgan_cifar10.py:quick --workdir runs/dcgan_quick
    Hardware: 2-core CPU, 1 device. Half the paper's widths (discriminator 32-64-128: 3,584
    features; generator 128-64-32), batch 64 (dcgan.torch's), 20 epochs (1,280 steps).
    Measured on this 2-core CPU (2026-12-03, test split, beside a test run): 212 s training
    (~500 images/s), 171 s evaluation. kNN k=20 43.95 vs 41.10 for the random-init
    discriminator (same recomputed BatchNorm statistics), k=200 40.51 vs 38.84, linear 47.69 vs
    47.98; k-means NMI 17.79 vs 11.58. (At the paper's widths 64-128-256 training runs at ~150
    images/s on this CPU: 9 min for the same schedule.)
  full: the paper's batch 128, 25 epochs (dcgan.torch's niter); with the full dataset:
    --config.data.kind=tfds --config.data.name=cifar10. The paper's CIFAR-10 figure (Table 1:
    82.8% with an L2-SVM on these features) comes from a discriminator trained on ImageNet-1k.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, train_config

VARIANTS = ("quick", "full")


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of dcgan_cifar10; expected one of {VARIANTS}")
  quick = arg == "quick"
  c = ml_collections.ConfigDict()
  c.method = "dcgan"
  c.seed = 0
  c.data = data_config("cifar10")
  c.model = ml_collections.ConfigDict(dict(name="dcgan", widths=(32, 64, 128) if quick else (64, 128, 256),
                                           first_norm=False, pool_grid=4, dtype="float32"))
  c.method_kwargs = ml_collections.ConfigDict(dict(image_size=32, z_dim=100, noise="uniform",
                                                   generator_width=32 if quick else 64,
                                                   flip_p=0.0, crop_fraction=1.0, eval_crop_fraction=1.0,
                                                   calibration_batch=256))
  c.train = train_config(batch_size=64 if quick else 128, epochs=20 if quick else 25, optimizer="adamw",
                         base_lr=2e-4, lr_scaling="none", weight_decay=0.0, warmup_epochs=0, end_lr=2e-4, b1=0.5,
                         checkpoint_every=500 if quick else 5000, log_every=25 if quick else 100)
  c.eval = eval_config()
  return c
