"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016) on ImageNet, the paper's setting.

  python experiments/main.py --config experiments/configs/jigsaw_imagenet.py --workdir runs/jigsaw_in \
      --config.data.data_dir=/path/to/tfds
Hardware: 8 accelerators. Geometry as the paper (Sec. 4): shorter side 256, random 225 crop,
3x3 cells of 75 px, 64 px tiles at random places in the cells, 30% grayscale, colour channels
jittered by up to 2 px, per-tile standardization; P = 1000 permutations by maximal average
Hamming distance (Algorithm 1). The paper's CFN is AlexNet-style (fc6 512 per tile, fc7 4096,
fc8 1000) trained 350K iterations at batch 256 with SGD lr 0.01; here ResNet-50 (ImageNet stem),
same heads, SGD lr 0.1 (x batch / 256) with cosine decay over 70 epochs (about 350K steps at 256).
Not run here (no accelerator, no ImageNet); the paper reports 67.6% VOC 2007 classification
mAP after fine-tuning its AlexNet-style CFN.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('full',)


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg != "full":
    raise ValueError(f"unknown variant {arg!r} of jigsaw_imagenet; expected 'full'")
  c = ml_collections.ConfigDict()
  c.method = "jigsaw"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet", dtype="bfloat16")
  c.method_kwargs = ml_collections.ConfigDict()
  c.method_kwargs.num_permutations = 1000
  c.method_kwargs.permutation_seed = 0
  c.method_kwargs.permutation_criterion = "mean"
  c.method_kwargs.resize = 256
  c.method_kwargs.crop = 225
  c.method_kwargs.grid = 3
  c.method_kwargs.tile = 64
  c.method_kwargs.gray_p = 0.3
  c.method_kwargs.channel_jitter = 2
  c.method_kwargs.embed_dim = 512
  c.method_kwargs.head_hidden_dims = (4096,)
  c.method_kwargs.eval_size = 224
  c.method_kwargs.eval_crop_fraction = 0.875
  c.train = train_config(
      batch_size=256,
      epochs=70,
      optimizer="sgd",
      base_lr=0.1,
      lr_scaling="linear",
      weight_decay=5e-4,
      warmup_epochs=2,
      checkpoint_every=5000,
      log_every=100,
  )
  c.eval = eval_config(baselines=False, per_block=True, linear_epochs=90.0, linear_batch=1024,
                         finetune_batch=1024)
  return c
