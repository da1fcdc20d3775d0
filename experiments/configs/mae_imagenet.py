"""MAE on ImageNet-1k: the paper's ViT-B/16 pretraining (He et al. 2022, Table 1 / appendix A.1).

Variants (the argument after the colon):
  vit_b16 (default): ViT-B/16 encoder (86 M parameters, class token, fixed 2-D sin-cos positions,
    the class token's position term zero), decoder 512 wide, 8 blocks, 16 heads, mask ratio 0.75
    (49 of 196 patches visible), normalized-pixel targets (unbiased per-patch variance, eps 1e-6),
    random resized crop (0.2, 1) bicubic + horizontal flip, batch 4096, AdamW betas (0.9, 0.95),
    weight decay 0.05 (none on biases, norms, position embeddings or tokens), lr 1.5e-4 x B/256
    = 2.4e-3, 40 warm-up epochs then cosine, 800 epochs, bfloat16 compute.
    python experiments/main.py --config experiments/configs/mae_imagenet.py:vit_b16 --workdir runs/mae_in1k \
      --config.data.data_dir=/path/to/tfds
    Hardware: 64 accelerators (e.g. a TPU v3-64 or 8 nodes of 8 GPUs; the paper: 128 TPU-v3
    cores, batch 4096). Expected (paper, 800 epochs): 83.4-83.6% fine-tuned top-1 (Table 1 at
    1600 epochs: 83.6); linear probe 68.0% (Table 1c, ViT-L 73.5; ViT-B in He et al. Fig. 9).
  vit_l16: ViT-L/16 as the paper's default (1600 epochs: 85.9% fine-tuned, 75.8% linear).
Only MAE's own choices are here; the frozen-feature evaluation is the library's kNN / linear
report (the paper's linear probe adds a parameter-free BatchNorm and trains 90 epochs with LARS).
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, train_config, vit_config


VARIANTS = ("vit_b16", "vit_l16")


def get_config(arg: str = "vit_b16") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of mae_imagenet; expected 'vit_b16' or 'vit_l16'")
  c = ml_collections.ConfigDict()
  c.method = "mae"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = vit_config(variant="B/16" if arg == "vit_b16" else "L/16", pool="cls", posemb="sincos2d",
                       dtype="bfloat16")

  m = c.method_kwargs = ml_collections.ConfigDict()
  m.image_size = 224
  m.mask_ratio = 0.75
  m.decoder_width = 512
  m.decoder_depth = 8
  m.decoder_heads = 16
  m.decoder_mlp_ratio = 4.0
  m.norm_pix = True
  m.crop_scale = (0.2, 1.0)
  m.eval_crop_fraction = 0.875

  c.train = train_config(
      batch_size=4096,
      epochs=800 if arg == "vit_b16" else 1600,
      optimizer="adamw",
      base_lr=1.5e-4,
      lr_scaling="linear",
      weight_decay=0.05,
      warmup_epochs=40,
      checkpoint_every=5000,
      log_every=100,
      b1=0.9, b2=0.95,
  )
  c.eval = eval_config(baselines=False, linear_epochs=90.0, linear_batch=1024,
                         finetune_batch=1024)
  # MAE's fine-tuning protocol (appendix A.1, Table 9): AdamW (0.9, 0.999), base lr 5e-4 (B) /
  # 1e-3 (L) x B / 256, weight decay 0.05, layer decay 0.65 (B) / 0.75 (L), 5 warm-up epochs,
  # 100 (B) / 50 (L) epochs at batch 1024, label smoothing 0.1, all the labels. Not here yet:
  # RandAug, mixup / cutmix, drop path (the paper's 83.6% uses them).
  c.eval.linear_sgd.feature_norm = True  # MAE's linear probing: BatchNorm without affine before the head
  c.eval.finetune.update(dict(
      optimizer="adamw", base_lr=5e-4 if arg == "vit_b16" else 1e-3, weight_decay=0.05,
      layer_decay=0.65 if arg == "vit_b16" else 0.75, warmup_epochs=5.0,
      epochs=100.0 if arg == "vit_b16" else 50.0, label_smoothing=0.1, label_fraction=1.0,
      crop_scale=(0.08, 1.0), baseline=False))
  return c
