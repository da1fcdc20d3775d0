"""DetCon-S / DetCon-B and their BYOL baseline on ImageNet (ResNet-50, 224 px, FH masks).

Variants: b (DetCon-B, the default), s (DetCon-S), byol (BYOL with the same recipe).
    python experiments/main.py --config experiments/configs/detcon_imagenet.py:b --workdir runs/detcon_b_in1k
Settings of the official google-deepmind/detcon ``detcon_b_config.py`` and the paper
(Hénaff et al. 2021, Sec. 4 and appendix): ResNet-50 (ImageNet stem), 224-pixel views and a
7x7 feature grid, batch 4096, LARS with lr 0.2 x B/256 (DetCon-S / SimCLR: 0.3 x B/256),
weight decay 1.5e-6 (DetCon-S: 1e-6), 10 warm-up epochs, cosine decay, projector and
predictor 4096 hidden / 256 out (DetCon-S: 2048 / 128 as SimCLR), temperature 0.1,
tau_base 0.996 (cosine to 1), 16 mask slots per view, BYOL's asymmetric augmentations
(blur 1.0 / 0.1, solarize 0 / 0.2; colour jitter strength 0.5 = brightness / contrast 0.4,
hue 0.1 as BYOL, saturation 0.4 where BYOL uses 0.2 because `simclr_view` ties the four to one
strength), FH masks with scale 1000, sigma 0.8, min_size 1000 on the full-resolution images
(the official ``generate_fh_masks_for_imagenet.py``), at most 256 segments. 1000 epochs for
the paper's headline numbers (the official config defaults to 100). Hardware: a pod slice
(the paper used TPU v3 with batch 4096). Expected: the paper's Table 1 / Fig. 1 figures;
not measured here.

Data: TFDS "imagenet2012" prepared in --config.data.data_dir (no download here), prepared as
ArrayRecord so that it is streamed by index (--config.data.storage=auto picks that above 1 GiB).
The FH masks of the 1.28M training images are a mask store on disk (--config.method_kwargs.
mask_cache_dir, shared by the hosts): computed by `method.prepare_source` on every core and
split across the processes of the run, shard by shard and resumable; precompute them offline
with `--mode=prepare` (roughly 0.1 s per ImageNet image per core, so 1.28M x 0.1 s / 16 cores
= about 2.2 hours on one 16-core host if the speed-up is linear; not measured at that scale), or pass
--config.method_kwargs.fh_on_the_fly=True to segment in the input pipeline.
`make test-imagenet` trains this config 2 steps on an ImageNet-shaped dataset (small network).
Not run here (no accelerator, no ImageNet).
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config

VARIANTS = ("b", "s", "byol")


def get_config(arg: str = "b") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of detcon_imagenet; expected one of {VARIANTS}")
  is_s = arg == "s"
  c = ml_collections.ConfigDict()
  c.method = {"b": "detcon_b", "s": "detcon_s", "byol": "byol"}[arg]
  c.seed = 0

  c.data = data_config("imagenet2012")

  c.model = model_config(depth=50, width=64, stem="imagenet", dtype="bfloat16")

  k = c.method_kwargs = ml_collections.ConfigDict()
  k.image_size = 224
  k.proj_hidden_dims = (2048,) if is_s else (4096,)
  k.proj_dim = 128 if is_s else 256
  k.eval_crop_fraction = 0.875
  if arg != "s":
    k.pred_hidden_dims = (4096,)
    k.tau_base = 0.996
  if arg != "byol":
    k.temperature = 0.1
    k.local_negatives = True
    k.mask_kind = "fh"
    k.num_samples = 16
    k.max_ids = 256
    k.grid_size = 4
    k.fh_scale = 1000.0
    k.fh_sigma = 0.8
    k.fh_min_size = 1000
    k.fh_on_the_fly = False
    k.mask_cache_dir = ml_collections.FieldReference(None, field_type=str)
  k.view_kwargs = ml_collections.ConfigDict()
  k.view_kwargs.crop_scale = (0.08, 1.0)
  k.view_kwargs.jitter_strength = 1.0 if is_s else 0.5
  k.view_kwargs.jitter_p = 0.8
  k.view_kwargs.gray_p = 0.2
  k.view1_kwargs = ml_collections.ConfigDict()
  k.view2_kwargs = ml_collections.ConfigDict()
  if is_s:  # SimCLR's ImageNet views: blur p 0.5, no solarization
    k.view_kwargs.blur_p = 0.5
  else:  # BYOL's asymmetry
    k.view1_kwargs.blur_p = 1.0
    k.view1_kwargs.solarize_p = 0.0
    k.view2_kwargs.blur_p = 0.1
    k.view2_kwargs.solarize_p = 0.2

  c.train = train_config(
      batch_size=4096,
      epochs=1000,
      optimizer="lars",
      base_lr=0.3 if is_s else 0.2,
      lr_scaling="linear",
      weight_decay=1e-6 if is_s else 1.5e-6,
      warmup_epochs=10,
      checkpoint_every=5000,
      log_every=100,
  )

  c.eval = eval_config(batch_size=1024, baselines=False, linear_epochs=90.0, linear_batch=1024,
                         finetune_batch=1024)
  return c
