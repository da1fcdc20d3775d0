"""SCAN on ImageNet (Van Gansbeke et al. 2020, Sec. 4.4), the official ImageNet settings
(configs/scan/scan_imagenet_*.yml, configs/selflabel/selflabel_imagenet_*.yml) on all 1000
classes.

Variants (the argument after the colon):
  scan: from a ResNet-50 pretext run (the paper: MoCo v2; here any run of this library with a
    ResNet-50, e.g. `swav_imagenet.py` or `simclr_cifar10.py:full` retargeted, named in
    --config.train.init_from): 50 neighbours mined on its features (exact search,
    1.28M^2 x 2048 multiply-adds: about an hour on one H100-class accelerator, minutes on a
    pod slice), 10 heads of 1000 clusters trained on the frozen backbone in inference mode
    (update_cluster_head_only), entropy weight 5, the SimCLR augmentation (random resized crop
    224 of (0.2, 1), colour jitter 0.4 / 0.4 / 0.4 / 0.1 with p 0.8, grayscale 0.2, flip),
    SGD lr 5.0, momentum 0.9, no weight decay, constant, batch 512, 100 epochs. The best head
    is chosen on 10,000 training images with 5 neighbours each.
    Hardware: 8+ accelerators.
  selflabel: from the SCAN run: threshold 0.99, no class balancing (the official ImageNet
    setting), strong augmentation (4 ops, Cutout 75), SGD lr 0.03, momentum 0.9, no weight
    decay, constant, batch 512, 25 epochs.
    Expected (paper, Table 5, ImageNet-1000 from MoCo v2): a clustering top-1 ACC of about 40
    after self-labelling; not measured here.
Deviations: the official strong view crops 224 pixels from the raw image (RandomCrop) and the
evaluation view centre-crops 224 without resizing; here both first resize the shorter side to
256. The official self-labelling on ImageNet keeps an EMA of the weights (alpha 0.999)
applied to the model after every step; not implemented here.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('scan', 'selflabel')


def get_config(arg: str = "scan") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of scan_imagenet; expected one of {list(VARIANTS)}")
  selflabel = arg == "selflabel"
  c = ml_collections.ConfigDict()
  c.method = "scan_selflabel" if selflabel else "scan"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet")

  m = c.method_kwargs = ml_collections.ConfigDict()
  m.num_clusters = 1000
  m.image_size = 224
  m.eval_crop_fraction = 0.875
  if selflabel:
    m.threshold = 0.99
    m.class_balance = False
    m.augmentation = "strong"
    m.num_strong_ops = 4
    m.cutout = 75
  else:
    m.num_heads = 10
    m.num_neighbors = 50
    m.entropy_weight = 5.0
    m.train_backbone = False
    m.augmentation = "simclr"
    m.crop_scale = (0.2, 1.0)
    m.jitter = 0.5  # SimCLR strength 0.5: brightness / contrast / saturation 0.4, hue 0.1
    m.head_select_examples = 10000
    m.select_neighbors = 5

  lr = 0.03 if selflabel else 5.0
  c.train = train_config(
      batch_size=512,
      epochs=25 if selflabel else 100,
      optimizer="sgd",
      base_lr=lr,
      lr_scaling="none",
      weight_decay=0.0,
      warmup_epochs=0,
      end_lr=lr,  # constant
      checkpoint_every=2500,
      log_every=100,
      init_from="runs/scan_imagenet" if selflabel else "runs/pretext_imagenet",
  )
  c.eval = eval_config(batch_size=1024, baselines=False, linear_iters=1000, linear_epochs=90.0, linear_batch=1024,
                       finetune_batch=1024)
  return c
