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

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('full',)


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg != "full":
    raise ValueError(f"unknown variant {arg!r} of rotnet_imagenet; expected 'full'")
  c = ml_collections.ConfigDict()
  c.method = "rotnet"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet", dtype="bfloat16")
  c.method_kwargs = ml_collections.ConfigDict()
  c.method_kwargs.image_size = 224
  c.method_kwargs.head_hidden_dims = ()
  c.method_kwargs.pad_crop = 0
  c.method_kwargs.flip_p = 0.5
  c.method_kwargs.eval_crop_fraction = 0.875
  c.train = train_config(
      batch_size=192,
      epochs=30,
      optimizer="sgd",
      base_lr=0.1,
      lr_scaling="linear",
      weight_decay=5e-4,
      warmup_epochs=1,
      checkpoint_every=5000,
      log_every=100,
  )
  c.eval = eval_config(baselines=False, per_block=True, linear_epochs=90.0, linear_batch=1024,
                         finetune_batch=1024)
  return c
