"""DCGAN discriminator features (Radford, Metz & Chintala, ICLR 2016) trained on ImageNet-1k at 32 px.

Variant "32px" (the only one): the paper's Sec. 5.1 setting, whose features it reports on
CIFAR-10 (Table 1: 82.8% +- 0.1 with an L2-SVM on the concatenated features, 28,672 dimensions).
  python experiments/main.py --config experiments/configs/dcgan_imagenet.py --workdir runs/dcgan_in1k32 \
      --config.data.data_dir=/path/to/tensorflow_datasets
  Images: shorter side resized to 32 and a 32 x 32 crop (the paper's "min-resized centre crops";
  here random crops in training, the centre one for evaluation), in [-1, 1]. Discriminator
  256-512-1024 (32 -> 4 px: (256 + 512 + 1024) x 16 = 28,672 features, as the paper's count),
  generator z (100, uniform) -> 4 x 4 x 1024 -> 512 -> 256 -> 3; Adam 2e-4, beta1 0.5, batch 128
  (the paper), 25 epochs (dcgan.torch's niter; the paper gives no length).
  Hardware: one accelerator. For the CIFAR-10 figure evaluate the checkpoint on CIFAR-10
  (--mode evaluate --config.eval.transfer.kind=tfds --config.eval.transfer.name=cifar10); the
  library's probes are kNN / logistic regression, not the paper's L2-SVM. Not run here.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, train_config

VARIANTS = ("32px",)


def get_config(arg: str = "32px") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of dcgan_imagenet; expected one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.method = "dcgan"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = ml_collections.ConfigDict(dict(name="dcgan", widths=(256, 512, 1024), first_norm=False, pool_grid=4,
                                           dtype="float32"))
  c.method_kwargs = ml_collections.ConfigDict(dict(image_size=32, z_dim=100, noise="uniform", generator_width=256,
                                                   flip_p=0.0, crop_fraction=1.0, eval_crop_fraction=1.0,
                                                   calibration_batch=256))
  c.train = train_config(batch_size=128, epochs=25, optimizer="adamw", base_lr=2e-4, lr_scaling="none",
                         weight_decay=0.0, warmup_epochs=0, end_lr=2e-4, b1=0.5, checkpoint_every=5000,
                         log_every=100)
  c.eval = eval_config(batch_size=512, baselines=False, linear_iters=1000)
  return c
