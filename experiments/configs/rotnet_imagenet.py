"""RotNet (Gidaris et al., ICLR 2018) on ImageNet, the paper's Sec. 3.2 setting adapted to ResNet.

  python experiments/main.py --config experiments/configs/rotnet_imagenet.py --workdir runs/rotnet_in \
      --config.data.data_dir=/path/to/tfds
Hardware: 8 accelerators. The paper trains an AlexNet (and in the appendix a ResNet) on
224 px images, batch 192 images x 4 rotations, SGD momentum 0.9, lr 0.01 with step decay,
weight decay 5e-4, about 30 epochs. Here: ResNet-50 (ImageNet stem), batch 192 x 4, SGD lr 0.1
(x batch / 256), cosine decay over 30 epochs; random resized crop is replaced by the paper's
shorter-side resize + random 224 crop + flip. Not run here (no accelerator, no ImageNet); the
per-block kNN rows show where the features peak, as the paper's per-layer linear probes.
"""

import ml_collections

from experiments.configs._common import eval_config


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg != "full":
    raise ValueError(f"unknown variant {arg!r} of rotnet_imagenet; expected 'full'")
  c = ml_collections.ConfigDict()
  c.method = "rotnet"
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
  c.method_kwargs.image_size = 224
  c.method_kwargs.head_hidden_dims = ()
  c.method_kwargs.pad_crop = 0
  c.method_kwargs.flip_p = 0.5
  c.method_kwargs.eval_crop_fraction = 0.875
  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 192
  c.train.epochs = 30
  c.train.optimizer = "sgd"
  c.train.base_lr = 0.1
  c.train.lr_scaling = "linear"
  c.train.weight_decay = 5e-4
  c.train.warmup_epochs = 1
  c.train.momentum = 0.9
  c.train.checkpoint_every = 5000
  c.train.keep_checkpoints = 3
  c.train.log_every = 100
  c.train.max_nonfinite_steps = 10
  c.eval = eval_config(baselines=False, per_block=True)
  return c
