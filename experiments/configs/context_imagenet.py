"""Context Prediction (Doersch et al., ICCV 2015) on ImageNet, the paper's setting.

  python experiments/main.py --config experiments/configs/context_imagenet.py --workdir runs/context_in \
      --config.data.data_dir=/path/to/tfds
Hardware: 8 accelerators. Geometry as the paper (Sec. 4): images rescaled to 150K-450K pixels,
96 px patches, 48 px gap, jitter up to 7 px, colour projection, half the patches down-and-up-
sampled (to as little as 100 pixels). The paper's trunk is AlexNet-style (fc6 4096 per patch,
fc7 4096, fc8 8-way) trained for about 4 weeks (1.7M iterations, batch 128 pairs) with SGD; here
ResNet-50 (ImageNet stem) with fc6/fc7 of 4096, SGD lr 0.1 (x batch / 256), batch 256 pairs,
cosine decay over 100 epochs. Not run here (no accelerator, no ImageNet); the paper evaluates
by transfer (VOC 2007 detection) and nearest-neighbour patches (written by write_artifacts).
"""

import ml_collections

from experiments.configs._common import eval_config


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg != "full":
    raise ValueError(f"unknown variant {arg!r} of context_imagenet; expected 'full'")
  c = ml_collections.ConfigDict()
  c.method = "context"
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
  c.method_kwargs.patch = 96
  c.method_kwargs.gap = 48
  c.method_kwargs.jitter = 7
  c.method_kwargs.area_range = (150_000, 450_000)
  c.method_kwargs.color = "projection"
  c.method_kwargs.downsample_p = 0.5
  c.method_kwargs.min_area = 100
  c.method_kwargs.embed_dim = 4096
  c.method_kwargs.head_hidden_dims = (4096,)
  c.method_kwargs.eval_size = 224
  c.method_kwargs.eval_crop_fraction = 0.875
  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 256
  c.train.epochs = 100
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
