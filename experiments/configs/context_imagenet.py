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

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('full',)


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg != "full":
    raise ValueError(f"unknown variant {arg!r} of context_imagenet; expected 'full'")
  c = ml_collections.ConfigDict()
  c.method = "context"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet", dtype="bfloat16")
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
  c.train = train_config(
      batch_size=256,
      epochs=100,
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
