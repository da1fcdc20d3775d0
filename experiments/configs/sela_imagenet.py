"""SeLA on ImageNet-1k: the official ResNet-50 script (yukimasano/self-label scripts/resnet.sh).

Variants (the argument after the colon):
  10x3k (default): ResNet-50, 10 heads of 3000 clusters (the paper's SeLA [3k x 10]), lambda
    25, 100 label optimizations spaced quadratically over 400 epochs, batch 256, SGD momentum
    0.9 lr 0.05 (official cifar/alexnet default 0.05, main.py 0.08 with drops every 150
    epochs), weight decay 1e-5, augmentation level 3 (random resized crop 224, grayscale 0.2,
    colour jitter 0.4 incl. hue, flip).
    python experiments/main.py --config experiments/configs/sela_imagenet.py:10x3k --workdir runs/sela_in1k \
      --config.data.data_dir=/path/to/tfds
    Hardware: 8+ accelerators; host memory: one head's logits come to the host as float32
    1.28M x 3000 (15 GB) per label optimization. Expected (paper, Table 7): ~61.5% linear top-1
    (conv5, ResNet-50 [3k x 10]).
  1x3k: one head of 3000 clusters.
Deviations: cosine decay instead of the official step drops (x0.1 every 150 epochs, the
trainer's one schedule); the official trains epochs + 1 epochs.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('10x3k', '1x3k')


def get_config(arg: str = "10x3k") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of sela_imagenet; expected one of {list(VARIANTS)}")
  c = ml_collections.ConfigDict()
  c.method = "sela"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet")
  m = c.method_kwargs = ml_collections.ConfigDict()
  m.num_heads = 10 if arg == "10x3k" else 1
  m.num_clusters = 3000
  m.lam = 25.0
  m.num_opts = 100
  m.spacing = "quadratic"
  m.image_size = 224
  m.crop_scale = (0.08, 1.0)
  m.jitter = 0.4
  m.gray_p = 0.2
  m.eval_crop_fraction = 0.875
  c.train = train_config(
      batch_size=256,
      epochs=400,
      optimizer="sgd",
      base_lr=0.05,
      lr_scaling="none",
      weight_decay=1e-5,
      warmup_epochs=0,
      checkpoint_every=5000,
      log_every=100,
  )
  c.eval = eval_config(batch_size=1024, baselines=False, linear_iters=1000, linear_epochs=90.0, linear_batch=1024,
                       finetune_batch=1024)
  return c
