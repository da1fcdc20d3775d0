"""MSN on CIFAR-10: a small ViT (4 px patches) with MSN's masked anchors on the shared subset.

Variants (the argument after the colon):
  quick (default): the CPU demo on the shared CIFAR-10 subset (4,153 train / 1,017 test).
    python experiments/main.py --config experiments/configs/msn_cifar10.py:quick --workdir runs/msn_quick
    Encoder: the ViT of simclr_cifar10:vit_quick (width 128, 4 blocks, 4 heads, 4 px patches,
    fixed sin-cos positions) with a class token. Views scaled from 224 / 96 px to 32 / 16 px: a
    target crop and one anchor crop at 32 px (area 0.3-1), 6 focal crops at 16 px
    (area 0.05-0.3), colour jitter 0.5, blur 0.5; 15% of each anchor's patches dropped.
    Head 512-512-128 (BN, GELU), K = 256 prototypes, temperature 0.1, sharpening 0.25, Sinkhorn,
    me-max 1.0; EMA 0.996 linear over 1.25 x the run; AdamW lr 1e-3, weight decay 0.04 -> 0.4,
    gradient clipping 3.0, batch 128, 8 epochs. Hardware: 2-core CPU, 1 device.
    Measured end to end (2-core AMD EPYC, ~7.5 min of training at ~90 images/s, ~1 min of
    evaluation), screened on the validation split (10% of the training images held out; kNN
    k=20 / linear L-BFGS on it, pretrained vs the random-init ViT): as committed 31.57 vs 31.08
    (linear 42.17 vs 41.69); tau_base 0.99: 31.81 vs 31.08; + mean-pooled patch tokens (pool
    gap): 29.40 vs 29.64; + batch 64 (464 steps): 29.40 vs 29.64 (linear 41.20 vs 40.24); lr
    2.5e-4: 29.40 vs 29.64. No collapse in any (prototypes in use 190-196 of 256, code entropy
    ~5.0 of 5.55 nats), the loss falls slowly (5.62 -> 4.93) and the encoder moves little from
    its initialization (max |change| 0.09): at this budget MSN does not yet learn features that
    kNN sees. The issue's target (kNN +8 over random init within 15 minutes) is not met.
"""

import ml_collections

from experiments.configs import msn_imagenet
from experiments.configs._common import data_config, eval_config, train_config, vit_config


VARIANTS = ("quick",)


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of msn_cifar10; expected 'quick'")
  c = ml_collections.ConfigDict()
  c.method = "msn"
  c.seed = 0
  c.data = data_config("cifar10")
  c.model = vit_config(variant="Ti/4", pool="cls", posemb="sincos2d")
  c.model.width, c.model.depth, c.model.num_heads, c.model.mlp_dim = 128, 4, 4, 512

  # MSN's own choices from the ImageNet config; only the sizes are scaled down for 32 px.
  m = c.method_kwargs = ml_collections.ConfigDict(msn_imagenet.get_config().method_kwargs.to_dict())
  m.image_size, m.focal_size, m.focal_views = 32, 16, 6
  m.proj_hidden_dims, m.proj_dim, m.num_prototypes = (512, 512), 128, 256
  m.prototype_grad_mult = 1.0  # one device: the mean is the sum
  m.eval_crop_fraction = 1.0

  c.train = train_config(
      batch_size=128, epochs=8, optimizer="adamw", base_lr=1e-3, lr_scaling="none",
      weight_decay=0.04, warmup_epochs=1, checkpoint_every=200, log_every=10,
      grad_clip_norm=3.0, weight_decay_end=0.4, schedule_scale=1.25, end_lr=1e-6,
  )
  c.eval = eval_config()
  return c
