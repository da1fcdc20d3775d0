"""Exemplar-CNN (Dosovitskiy et al., NIPS 2014) on CIFAR-10: classify patches into their seed's surrogate class.

Seeds: one 16 x 16 patch (regions of 16 px; CIFAR images leave no room for the paper's
larger scales) from each of N distinct training images, drawn with probability proportional to
its summed squared gradient, kept with its 32 x 32 surroundings. Every example is a new member
of its seed's class under the paper's transformations (translation 0.2, scale 0.7-1.4, rotation
20 degrees, principal-component contrast 0.5-2, HSV saturation / value power 0.25-4 x 0.7-1.4
+ 0.1, hue 0.1). N-way softmax over the trunk's pooled features through a 512-unit hidden layer
(the paper's 64c5-64c5-128c5-512f network's last layer). Features: the trunk on whole 32 px
images. The run folder gets surrogate_classes.png (8 seeds and 7 members each) and
surrogate.json (held-out surrogate accuracy on new transformations of every seed, chance 1/N).

Variants (the argument after the colon):
  quick: the CPU run on the shared CIFAR-10 subset (4,153 train / 1,017 test).
    python experiments/main.py --config experiments/configs/exemplar_cifar10.py:quick --workdir runs/exemplar_quick
    Hardware: 2-core CPU, 1 device. ResNet-18 (CIFAR stem) at width 16, N = 2,000 seeds,
    batch 128, 40 epochs of the seeds (625 steps), AdamW 2e-3, 1 warm-up epoch, cosine.
    Measured on this 2-core CPU (2026-12-03, test split): 148 s training (~650 images/s), 48 s
    evaluation. kNN k=20 39.43 vs 26.25 for the random-init trunk, k=200 39.23 vs 27.24, linear
    41.99 vs 33.53; held-out surrogate accuracy 13.50% (chance 0.05%). Not tuned (one run).
  full: width 64, N = 8,000 seeds (the paper's smallest large set; it needs that many training
    images: --config.data.kind=tfds --config.data.name=cifar10), 100 epochs.
For the paper's STL-10 setting see exemplar_stl10.py.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config

VARIANTS = ("quick", "full")


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of exemplar_cifar10; expected one of {VARIANTS}")
  quick = arg == "quick"
  c = ml_collections.ConfigDict()
  c.method = "exemplar"
  c.seed = 0
  c.data = data_config("cifar10")
  c.model = model_config(depth=18, width=16 if quick else 64, stem="cifar")
  c.method_kwargs = ml_collections.ConfigDict(dict(
      patch=16, num_seeds=2000 if quick else 8000, max_region=0.5, seed_rng=0, translation=0.2, scale=(0.7, 1.4),
      rotation=20.0, pc_scale=(0.5, 2.0), sv_power=(0.25, 4.0), sv_mult=(0.7, 1.4), sv_add=(-0.1, 0.1), hue=0.1,
      head_hidden_dims=(512,), eval_size=32, eval_crop_fraction=1.0))
  c.train = train_config(batch_size=128, epochs=40 if quick else 100, optimizer="adamw", base_lr=2e-3,
                         lr_scaling="none", weight_decay=1e-4, warmup_epochs=1, checkpoint_every=300 if quick else 5000,
                         log_every=25 if quick else 100)
  c.eval = eval_config()
  return c
