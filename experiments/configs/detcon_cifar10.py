"""DetCon-S and DetCon-B on CIFAR-10, with Felzenszwalb-Huttenlocher masks.

Variants (the argument after the colon): s_quick, b_quick (CPU demos), s_full, b_full.
  s_quick / b_quick: the shared CIFAR-10 subset (4,153 train / 1,017 test) on this 2-core CPU.
    python experiments/main.py --config experiments/configs/detcon_cifar10.py:s_quick --workdir runs/detcon_s_quick
    python experiments/main.py --config experiments/configs/detcon_cifar10.py:b_quick --workdir runs/detcon_b_quick
    Hardware: 2-core CPU, 1 device; budget 10 minutes of training + evaluation. Measured
    (2026-11-23, one job on the CPU): DetCon-S, 8 epochs = 256 steps: 408 s training (87
    images/s) + 59 s evaluation, 8 min 5 s wall, kNN top-1 k=20 41.99 (random init 26.25, raw
    pixels 29.99), linear 48.48 (a 9-epoch run: 43.07 / 46.41 but 10 min 15 s, over budget);
    DetCon-B, 9 epochs = 288 steps: 452 s (89 images/s) + 60 s, 8 min 50 s wall, kNN 38.15,
    linear 43.46. DetCon-S's step can cost more than DetCon-B's on this CPU: its loss contrasts
    2 x 2,048 slots against 4,096 (the B x R slots of both views).
    Recipe: as simclr_cifar10.py:quick / byol_cifar10.py:quick (ResNet-18 CIFAR stem at width
    16, batch 128, AdamW 5e-3, 1 warm-up epoch, crops of 20-100%, jitter strength 0.5, 512-wide
    heads with 128 outputs), temperature 0.1 (the paper's), 16 mask slots per view on the 4x4
    feature grid of 32-pixel views. FH masks on the 32-pixel images with scale 100, sigma 0.5,
    min_size 32 (about 9 segments per image, about 6 of them on a view's 4x4 grid); the
    ImageNet setting (1000 / 0.8 / 1000 on ~400-pixel images) would leave one segment per CIFAR
    image. Masks are computed once (about 1 ms per image, ~5 s) and cached in
    ~/.cache/jax_ssl/fh_masks (override with --config.method_kwargs.mask_cache_dir or
    $JAX_SSL_CACHE). DetCon-B uses tau_base 0.99 for the short run (as BYOL's quick config).
    Fewer epochs than SimCLR's 11 because the steps cost more (DetCon-B: target forward passes;
    both: the B x R = 2,048-slot contrastive loss).
    --config.method_kwargs.mask_kind=grid gives the paper's spatial-grid baseline
    (grid_size x grid_size cells); mask_kind=dataset uses masks given by the source.
  s_full / b_full: the paper's recipe transposed to CIFAR-10 (ResNet-50 CIFAR stem, batch
    1024 / 512, LARS, 1000 epochs, 2048/4096-wide heads; DetCon-S: lr 1.0 x B/256, wd 1e-6 as
    SimCLR's CIFAR setting; DetCon-B: lr 0.2 x B/256, wd 1.5e-6, tau_base 0.996, BYOL's
    asymmetric blur / solarization). Use with the full data, e.g.
    --config.data.kind=tfds --config.data.name=cifar10. Hardware: 8 accelerators. Not
    measured here; the paper reports ImageNet and COCO transfer only.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config

VARIANTS = ("s_quick", "b_quick", "s_full", "b_full")


def get_config(arg: str = "b_full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of detcon_cifar10; expected one of {VARIANTS}")
  flavour, size = arg.split("_")
  quick, is_b = size == "quick", flavour == "b"
  c = ml_collections.ConfigDict()
  c.method = "detcon_b" if is_b else "detcon_s"
  c.seed = 0

  c.data = data_config("cifar10")

  c.model = model_config(depth=18 if quick else 50, width=16 if quick else 64, stem="cifar")

  k = c.method_kwargs = ml_collections.ConfigDict()
  k.image_size = 32
  k.proj_hidden_dims = (512,) if quick else ((4096,) if is_b else (2048,))
  k.proj_dim = 128 if (quick or not is_b) else 256
  k.temperature = 0.1
  k.local_negatives = True
  k.eval_crop_fraction = 1.0
  # Masks: "fh" (cached Felzenszwalb-Huttenlocher), "grid" (spatial baseline) or "dataset".
  k.mask_kind = "fh"
  k.num_samples = 16
  k.max_ids = 256
  k.grid_size = 4
  k.fh_scale = 100.0
  k.fh_sigma = 0.5
  k.fh_min_size = 32
  k.fh_on_the_fly = False
  k.mask_cache_dir = ml_collections.FieldReference(None, field_type=str)
  k.view_kwargs = ml_collections.ConfigDict()
  k.view_kwargs.crop_scale = (0.2, 1.0) if quick else (0.08, 1.0)
  k.view_kwargs.jitter_strength = 0.5
  k.view_kwargs.jitter_p = 0.8
  k.view_kwargs.gray_p = 0.2
  k.view1_kwargs = ml_collections.ConfigDict()
  k.view2_kwargs = ml_collections.ConfigDict()
  if is_b:
    k.pred_hidden_dims = (512,) if quick else (4096,)
    k.tau_base = 0.99 if quick else 0.996
    k.view1_kwargs.blur_p = 0.0 if quick else 1.0
    k.view1_kwargs.solarize_p = 0.0
    k.view2_kwargs.blur_p = 0.0 if quick else 0.1
    k.view2_kwargs.solarize_p = 0.2
  else:
    k.view1_kwargs.blur_p = 0.0
    k.view2_kwargs.blur_p = 0.0

  c.train = train_config(
      batch_size=128 if quick else (512 if is_b else 1024),
      epochs=(9 if is_b else 8) if quick else 1000,
      optimizer="adamw" if quick else "lars",
      base_lr=5e-3 if quick else (0.2 if is_b else 1.0),
      lr_scaling="none" if quick else "linear",
      weight_decay=1e-4 if quick else (1.5e-6 if is_b else 1e-6),
      warmup_epochs=1 if quick else 10,
      checkpoint_every=200 if quick else 5000,
      log_every=10 if quick else 100,
  )

  c.eval = eval_config()
  return c
