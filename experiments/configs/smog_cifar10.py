"""SMoG (synchronous momentum grouping) on CIFAR-10.

Variants (the argument after the colon):
  quick: the CPU demo on the shared CIFAR-10 subset (4,153 train / 1,017 test).
    python experiments/main.py --config experiments/configs/smog_cifar10.py:quick --workdir runs/smog_quick
    Hardware: 2-core CPU, 1 device. Budget: 10 minutes of training + evaluation.
    Recipe: BYOL's quick recipe (byol_cifar10.py:quick: ResNet-18 CIFAR stem at width 16,
    batch 64 for 12 epochs, AdamW 5e-3 with 1 warm-up epoch and cosine decay, EMA from 0.99,
    projector / predictor 512 hidden and 128 out, crops 20-100%, colour-jitter strength 0.5, no
    blur, solarization 0 / 0.2) with SMoG's objective: group momentum 0.99, temperature 0.1,
    groups reset by 10 iterations of spherical k-means on the memory bank every 100 steps, the
    bank holding both views' momentum features of those 100 steps (2 x 64 x 100 rows).
    Number of groups chosen on the validation split (--config.eval.split=validation, 696
    steps, kNN k=20, random init 23.61, 2026-12-04): 32 groups 33.98 (+10.4; 31 of 32 groups in
    use per batch after the second reset, the largest 7%), 128 groups 31.08 (+7.5; 73-80 in use).
    Before the first reset the momentum updates gather the batch in fewer groups (14-20 in use,
    the largest 15%); each reset to k-means centroids spreads it out again (the loss jumps,
    then falls).
    Measured (this config, test split, 2-core CPU, 2026-12-04): 768 steps in 435 s (~120
    images/s), evaluation 68 s, 8 min 47 s wall; kNN k=20 / k=200 33.14 / 33.24 against 26.25 /
    27.24 at random init (+6.9: short of the issue's +8, which the validation split met),
    linear 38.45 (33.53); its 32 groups on the test split ACC / NMI / ARI 12.68 / 16.79 / 4.21.
  full: a CIFAR-10 setting at full scale: ResNet-18 (CIFAR stem, width 64), batch 256,
    LARS lr 0.2 x B/256 (BYOL's; the paper's is not verified here), weight decay 1.5e-6, 10
    warm-up epochs, 800 epochs, EMA from 0.99, projector / predictor 2048 hidden and 128 out,
    300 groups (lightly's CIFAR-10 benchmark setting, 50k images), reset every 300 steps from a
    bank of 2 x 256 x 300 rows, BYOL's asymmetric blur (1.0 / 0.1) and solarization (0 / 0.2).
    Use with the full dataset (--config.data.kind=tfds --config.data.name=cifar10).
    Hardware: 1-8 accelerators. Expected: not measured here.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('quick', 'full')


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of smog_cifar10; expected 'quick' or 'full'")
  quick = arg == "quick"
  c = ml_collections.ConfigDict()
  c.method = "smog"
  c.seed = 0
  c.data = data_config("cifar10")
  c.model = model_config(depth=18, width=16 if quick else 64, stem="cifar")

  batch = 64 if quick else 256
  m = c.method_kwargs = ml_collections.ConfigDict()
  m.image_size = 32
  m.proj_hidden_dims = (512,) if quick else (2048,)
  m.proj_dim = 128
  m.pred_hidden_dims = (512,) if quick else (2048,)
  m.num_groups = 32 if quick else 300
  m.beta = 0.99
  m.temperature = 0.1
  m.tau_base = 0.99
  m.reset_every = 100 if quick else 300
  m.bank_size = 2 * batch * m.reset_every
  m.kmeans_iters = 10
  m.collapse_groups = 1
  m.eval_crop_fraction = 1.0
  m.view_kwargs = ml_collections.ConfigDict()
  m.view_kwargs.crop_scale = (0.2, 1.0) if quick else (0.08, 1.0)
  m.view_kwargs.jitter_strength = 0.5
  m.view_kwargs.jitter_p = 0.8
  m.view_kwargs.gray_p = 0.2
  m.view1_kwargs = ml_collections.ConfigDict()
  m.view1_kwargs.blur_p = 0.0 if quick else 1.0
  m.view1_kwargs.solarize_p = 0.0
  m.view2_kwargs = ml_collections.ConfigDict()
  m.view2_kwargs.blur_p = 0.0 if quick else 0.1
  m.view2_kwargs.solarize_p = 0.2

  c.train = train_config(
      batch_size=batch,
      epochs=12 if quick else 800,
      optimizer="adamw" if quick else "lars",
      base_lr=5e-3 if quick else 0.2,
      lr_scaling="none" if quick else "linear",
      weight_decay=1e-4 if quick else 1.5e-6,
      warmup_epochs=1 if quick else 10,
      checkpoint_every=200 if quick else 5000,
      log_every=10 if quick else 100,
  )
  c.eval = eval_config()
  return c
