"""SwAV on ImageNet-1k: the paper's multi-crop ResNet-50 setup (Caron et al. 2020, Table 1/3).

Variants (the argument after the colon):
  bs4096 (default): the official 800-epoch script (facebookresearch/swav
    scripts/swav_800ep_pretrain.sh, 64 GPUs x 64 images): ResNet-50, 2x224 at area (0.14, 1)
    + 6x96 at (0.05, 0.14), colour jitter strength 1.0 and Gaussian blur p=0.5 on every crop,
    projection MLP 2048-128 with BN, K = 3000 prototypes, temperature 0.1, epsilon 0.05,
    3 Sinkhorn iterations, codes from the two 224 crops, batch 4096, LARS (trust 0.001)
    lr 4.8 with 10 warm-up epochs and cosine decay, weight decay 1e-6, prototypes frozen for
    the first epoch (official: 313 iterations), 800 epochs. No queue: the official script sets
    --queue_length 0, and main_swav.py would truncate a 3840 queue to 0 at this batch anyway
    (`queue_length -= queue_length % (batch_size * world_size)`, 3840 % 4096 = 3840). The
    queue is for small batches; use `bs256`, or set --config.method_kwargs.queue_length.
    python experiments/main.py --config experiments/configs/swav_imagenet.py:bs4096 --workdir runs/swav_in1k \
      --config.data.data_dir=/path/to/tfds
    Hardware: 64 accelerators (or 32 with 128 images each). Expected (paper, 800 epochs):
    75.3% linear top-1 with ResNet-50.
  bs256: the official small-batch script (scripts/swav_400ep_bs256_pretrain.sh, 4 GPUs x 64):
    as above but batch 256, LARS lr 0.6 without warm-up, a queue of 3840 embeddings per
    assignment crop from epoch 15 (the total over devices; official 960 per GPU), 400 epochs.
    Expected (paper, Table 3 / official README): 74.3% linear top-1 at 400 epochs.

Deviations: the warm-up starts at 0 (official 0.3) and the cosine ends at 0 (official 0.0048),
as the trainer's schedule does for every method; no mixed precision (set
--config.model.dtype=bfloat16 on accelerators).
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('bs4096', 'bs256')


def get_config(arg: str = "bs4096") -> ml_collections.ConfigDict:
  if arg not in ("bs4096", "bs256"):
    raise ValueError(f"unknown variant {arg!r} of swav_imagenet; expected 'bs4096' or 'bs256'")
  small = arg == "bs256"
  c = ml_collections.ConfigDict()
  c.method = "swav"
  c.seed = 0

  c.data = data_config("imagenet2012")

  c.model = model_config(depth=50, width=64, stem="imagenet")

  m = c.method_kwargs = ml_collections.ConfigDict()
  m.crop_sizes = (224, 96)
  m.crop_counts = (2, 6)
  m.crop_scales = ((0.14, 1.0), (0.05, 0.14))
  m.proj_hidden_dims = (2048,)
  m.proj_dim = 128
  m.num_prototypes = 3000
  m.temperature = 0.1
  m.epsilon = 0.05
  m.sinkhorn_iters = 3
  m.assign_crops = (0, 1)
  m.queue_length = 3840 if small else 0
  m.queue_start_epoch = 15
  m.freeze_prototypes_epochs = 1.0
  m.collapse_prototypes = 1
  m.eval_crop_fraction = 0.875
  m.view_kwargs = ml_collections.ConfigDict()
  m.view_kwargs.jitter_strength = 1.0
  m.view_kwargs.jitter_p = 0.8
  m.view_kwargs.gray_p = 0.2
  m.view_kwargs.blur_p = 0.5

  c.train = train_config(
      batch_size=256 if small else 4096,
      epochs=400 if small else 800,
      optimizer="lars",
      base_lr=0.6 if small else 4.8,
      lr_scaling="none",
      weight_decay=1e-6,
      warmup_epochs=0 if small else 10,
      checkpoint_every=5000,
      log_every=100,
  )

  c.eval = eval_config(batch_size=1024, baselines=False, linear_iters=1000, linear_epochs=90.0, linear_batch=1024,
                         finetune_batch=1024)
  return c
