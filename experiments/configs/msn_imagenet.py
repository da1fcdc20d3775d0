"""MSN on ImageNet-1k: the official ViT-S/16 pretraining (Assran et al. 2022; configs/pretrain/msn_vits16.yaml).

Variants (the argument after the colon):
  vit_s16 (default): ViT-S/16 (class token, learned positions), 1 target + 1 anchor crop at 224 px
    (area 0.3-1) and 10 focal crops at 96 px (area 0.05-0.3), colour jitter 0.5, blur p 0.5,
    15% of the anchors' patches dropped; head 2048-2048-256 with BN and GELU; 1024 prototypes of
    dim 256, temperature 0.1, sharpening 0.25, 3 Sinkhorn iterations on the sharpened targets,
    me-max weight 1.0; batch 1024 (the README's 16 GPUs x 64); AdamW lr 1e-3 (warm-up 15 epochs;
    official from 2e-4, here from 0) cosine to 1e-6, weight decay 0.04 -> 0.4 on a cosine,
    both spanning 1.25 x the run, gradient clipping 3.0; EMA 0.996 linear over 1.25 x the run;
    800 epochs. The prototypes' gradient is multiplied by 16, the official run's world size
    (its AllReduceSum sums the prototypes' gradients over GPUs; set
    --config.method_kwargs.prototype_grad_mult=1 to average them like the rest).
    python experiments/main.py --config experiments/configs/msn_imagenet.py:vit_s16 --workdir runs/msn_in1k \
      --config.data.data_dir=/path/to/tfds
    Hardware: 16 accelerators (e.g. 2 nodes of 8 GPUs). Expected (paper, Table 7 / official
    README, ViT-S/16 800 epochs): 76.9% linear top-1; 1 image per class (1% of labels): ~69%.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, train_config, vit_config


VARIANTS = ("vit_s16",)


def get_config(arg: str = "vit_s16") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of msn_imagenet; expected 'vit_s16'")
  c = ml_collections.ConfigDict()
  c.method = "msn"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = vit_config(variant="S/16", pool="cls", posemb="learn", dtype="bfloat16")

  m = c.method_kwargs = ml_collections.ConfigDict()
  m.image_size = 224
  m.focal_size = 96
  m.rand_views = 1
  m.focal_views = 10
  m.rand_crop_scale = (0.3, 1.0)
  m.focal_crop_scale = (0.05, 0.3)
  m.patch_drop = 0.15
  m.proj_hidden_dims = (2048, 2048)
  m.proj_dim = 256
  m.num_prototypes = 1024
  m.temperature = 0.1
  m.sharpen_temperature = 0.25
  m.me_max_weight = 1.0
  m.use_sinkhorn = True
  m.tau_base = 0.996
  m.ema_span = 1.25
  m.prototype_grad_mult = 16.0
  m.eval_crop_fraction = 0.875
  m.view_kwargs = ml_collections.ConfigDict(dict(jitter_strength=0.5, blur_p=0.5))

  c.train = train_config(
      batch_size=1024, epochs=800, optimizer="adamw", base_lr=1e-3, lr_scaling="none",
      weight_decay=0.04, warmup_epochs=15, checkpoint_every=5000, log_every=100,
      grad_clip_norm=3.0, weight_decay_end=0.4, schedule_scale=1.25, end_lr=1e-6,
  )
  c.eval = eval_config(baselines=False, linear_epochs=90.0, linear_batch=1024,
                         finetune_batch=1024)
  return c
