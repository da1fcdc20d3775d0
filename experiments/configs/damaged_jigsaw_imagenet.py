"""Completing damaged jigsaw puzzles (Kim et al., WACV 2018) on ImageNet.

  python experiments/main.py --config experiments/configs/damaged_jigsaw_imagenet.py --workdir runs/damaged_jigsaw_in \
      --config.data.data_dir=/path/to/tfds
Hardware: 8 accelerators. Jigsaw's geometry (jigsaw_imagenet.py: shorter side 256, random 225
crop, 3x3 cells of 75 px, 64 px tiles, P = 1000 maximal-Hamming permutations), one tile removed
and the colour dropped from the other eight; heads: the permutation (fc6 512 per tile, fc7
4096), the missing 64 px tile (DCGAN generator, width 64, L2) and each tile's ab colour (16 x 16
per tile, Colorization's 10-unit bins and rebalancing). ResNet-50 trunk (the paper's is
AlexNet-style), SGD lr 0.1 (x batch / 256), cosine over 70 epochs; the permutation alone for the
first third, then all three tasks (the staging is this library's assumption: see the method's
docstring). Not run here (no accelerator, no ImageNet); the paper reports VOC 2007
classification 69.2 mAP, detection 52.4, segmentation 39.3 with its AlexNet.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config

VARIANTS = ("full",)


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of damaged_jigsaw_imagenet; expected one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.method = "damaged_jigsaw"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet", dtype="bfloat16")
  c.method_kwargs = ml_collections.ConfigDict(dict(
      num_permutations=1000, permutation_seed=0, permutation_criterion="mean",
      resize=256, crop=225, grid=3, tile=64, channel_jitter=0, embed_dim=512, head_hidden_dims=(4096,),
      color_grid=10, num_neighbors=5, sigma=5.0, lam=0.5, prior_sigma=5.0, prior_images=100000,
      color_width=128, decoder_width=64, weights=dict(jigsaw=1.0, color=1.0, inpaint=1.0),
      stage_starts=dict(jigsaw=0.0, color=1 / 3, inpaint=1 / 3),
      eval_size=224, eval_crop_fraction=0.875, temperature=0.38))
  c.train = train_config(batch_size=256, epochs=70, optimizer="sgd", base_lr=0.1, lr_scaling="linear",
                         weight_decay=5e-4, warmup_epochs=2, checkpoint_every=5000, log_every=100)
  c.eval = eval_config(baselines=False, per_block=True, linear_epochs=90.0, linear_batch=1024, finetune_batch=1024)
  return c
