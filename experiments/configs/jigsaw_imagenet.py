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

from experiments.configs._common import eval_config


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg != "full":
    raise ValueError(f"unknown variant {arg!r} of jigsaw_imagenet; expected 'full'")
  c = ml_collections.ConfigDict()
  c.method = "jigsaw"
  c.seed = 0
  c.data = ml_collections.ConfigDict()
  c.data.kind = "tfds"
  c.data.path = ml_collections.FieldReference(None, field_type=str)
  c.data.name = "imagenet2012"
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.download = False
  c.data.train_split = "train"
  c.data.test_split = "validation"
  c.data.mean = (0.485, 0.456, 0.406)
  c.data.std = (0.229, 0.224, 0.225)
  c.model = ml_collections.ConfigDict()
  c.model.depth = 50
  c.model.width = 64
  c.model.stem = "imagenet"
  c.model.dtype = "bfloat16"
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
  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 256
  c.train.epochs = 70
  c.train.optimizer = "sgd"
  c.train.base_lr = 0.1
  c.train.lr_scaling = "linear"
  c.train.weight_decay = 5e-4
  c.train.warmup_epochs = 2
  c.train.momentum = 0.9
  c.train.checkpoint_every = 5000
  c.train.keep_checkpoints = 3
  c.train.log_every = 100
  c.train.max_nonfinite_steps = 10
  c.eval = eval_config(baselines=False, per_block=True)
  return c
