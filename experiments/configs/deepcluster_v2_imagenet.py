"""DeepCluster-v2 on ImageNet-1k, as the official scripts of facebookresearch/swav.

Variants (the argument after the colon):
  800ep (default): scripts/deepclusterv2_800ep_pretrain.sh (64 GPUs x 64 images): ResNet-50,
    2x224 at area (0.14, 1) + 6x96 at (0.05, 0.14), colour jitter 1.0, blur p 0.5,
    projection MLP 2048-128 with BN, 3 heads of 3000 prototypes, temperature 0.1, 10 k-means
    iterations per head and epoch on the memory bank of the two 224 crops, batch 4096, LARS
    (trust 0.001) lr 4.8 with 10 warm-up epochs, cosine to 0.0048, weight decay 1e-6, 800 epochs.
    python experiments/main.py --config experiments/configs/deepcluster_v2_imagenet.py:800ep \
      --workdir runs/dcv2_in1k --config.data.data_dir=/path/to/tfds
    Hardware: 64 accelerators (or 32 with 128 images each). Memory: the bank is
    2 x 1.28M x 128 float32 = 1.3 GB on every device (bfloat16 with
    --config.method_kwargs.bank_dtype=bfloat16). Expected (paper, Table 3): 75.2% linear top-1.
  400ep: scripts/deepclusterv2_400ep_pretrain.sh: 2x160 at (0.08, 1) + 4x96 at (0.05, 0.14),
    400 epochs, otherwise as 800ep.
  400ep_2x224: scripts/deepclusterv2_400ep_2x224_pretrain.sh: 2x224 at (0.08, 1), no small
    crops, 400 epochs. Expected (paper, Table 3 without multi-crop): 70.2%.
Deviations: the warm-up starts at 0 (official 0.3); no mixed precision (set
--config.model.dtype=bfloat16 on accelerators); see jax_ssl/methods/deepcluster.py for the
method's own (initial memory bank, prototypes as state).
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('800ep', '400ep', '400ep_2x224')


def get_config(arg: str = "800ep") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of deepcluster_v2_imagenet; expected one of {list(VARIANTS)}")
  c = ml_collections.ConfigDict()
  c.method = "deepcluster_v2"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet")

  m = c.method_kwargs = ml_collections.ConfigDict()
  m.crop_sizes, m.crop_counts, m.crop_scales = {
      "800ep": ((224, 96), (2, 6), ((0.14, 1.0), (0.05, 0.14))),
      "400ep": ((160, 96), (2, 4), ((0.08, 1.0), (0.05, 0.14))),
      "400ep_2x224": ((224,), (2,), ((0.08, 1.0),)),
  }[arg]
  m.proj_hidden_dims = (2048,)
  m.proj_dim = 128
  m.num_prototypes = (3000, 3000, 3000)
  m.temperature = 0.1
  m.kmeans_iters = 10
  m.assign_crops = (0, 1)
  m.collapse_clusters = 1
  m.bank_dtype = "float32"
  m.eval_crop_fraction = 0.875
  m.view_kwargs = ml_collections.ConfigDict()
  m.view_kwargs.jitter_strength = 1.0
  m.view_kwargs.jitter_p = 0.8
  m.view_kwargs.gray_p = 0.2
  m.view_kwargs.blur_p = 0.5

  c.train = train_config(
      batch_size=4096,
      epochs=800 if arg == "800ep" else 400,
      optimizer="lars",
      base_lr=4.8,
      lr_scaling="none",
      weight_decay=1e-6,
      warmup_epochs=10,
      checkpoint_every=5000,
      log_every=100,
      end_lr=0.0048,
  )
  c.eval = eval_config(batch_size=1024, baselines=False, linear_iters=1000, linear_epochs=90.0, linear_batch=1024,
                       finetune_batch=1024)
  return c
