"""Colorization (Zhang, Isola & Efros, ECCV 2016) on ImageNet with the paper's optimization.

Variant "full" (the only one):
  python experiments/main.py --config experiments/configs/colorization_imagenet.py --workdir runs/colorization_in1k \
      --config.data.data_dir=/path/to/tensorflow_datasets
  The paper (Sec. 3): images resized to 256, random 176 x 176 crops (here: shorter side to
  176 / 0.6875 = 256, then a random 176 crop; flips), the network sees L - 50 and predicts the
  ab bins at a quarter of the resolution (44 x 44); Adam with beta1 0.9, beta2 0.99, weight decay
  1e-3, lr 3e-5 at batch 40 for 450k iterations (~14 epochs); the paper drops the lr to 1e-5 at
  200k and 3e-6 at 375k, here a cosine over the same length. Soft encoding on 5 neighbours, sigma
  5; class rebalancing lambda 0.5 of the prior of 10,000 evenly spaced training images (the paper
  uses the whole training set; the prior of a 10k sample differs little on ImageNet's colours).
  The trunk is a ResNet-50 with one input channel (the paper's is a VGG-style network with dilated
  convolutions; see jax_ssl.methods.colorization), so its features are evaluated like every
  other method's (kNN / linear / the published protocols with --mode linear / finetune).
  Hardware: 8 accelerators (batch 40 = 5 per device); scale the batch and lr together for more.
  Expected (paper, Table 4, their network; linear classifiers on frozen ImageNet conv layers):
  about 30% top-1 from conv3-conv5; this ResNet-50 has not been run here.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config

VARIANTS = ("full",)


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of colorization_imagenet; expected one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.method = "colorization"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet")
  c.method_kwargs = ml_collections.ConfigDict(dict(
      image_size=176, grid=10, num_neighbors=5, sigma=5.0, lam=0.5, prior_sigma=5.0, prior_images=10000,
      decoder_width=256, flip_p=0.5, eval_crop_fraction=0.6875, temperature=0.38))
  c.train = train_config(batch_size=40, epochs=14, optimizer="adamw", base_lr=3e-5, lr_scaling="none",
                         weight_decay=1e-3, warmup_epochs=0, checkpoint_every=5000, log_every=100, b2=0.99)
  c.eval = eval_config(batch_size=512, baselines=False, linear_iters=1000, pretext_epochs=1)
  return c
