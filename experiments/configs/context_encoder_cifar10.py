"""Context Encoders (Pathak et al., CVPR 2016) on CIFAR-10: inpaint the centre of each image.

The paper's geometry scaled from 128 px to 32 px: the central 16 x 16 square is predicted, the
input hole is 1 px smaller on each side (the official 4 px at 128) and filled with the dataset
mean, the L2 weight is 10x on that 1 px band; joint loss 0.999 L2 + 0.001 adversarial with a
DCGAN discriminator on the centre; Adam beta1 0.5 at a constant lr for the discriminator and
10x it for the generator (the official code's optimStateG). The encoder is the official netE
(`models.DCGANEncoder`: stride-2 4x4 convolutions, BatchNorm but on the first, LeakyReLU 0.2)
with one layer per halving down to 4 x 4; features for evaluation: every encoder layer
max-pooled to 4 x 4 and concatenated (the DCGAN paper's features).

Variants (the argument after the colon):
  quick: the CPU run on the shared CIFAR-10 subset (4,153 train / 1,017 test).
    python experiments/main.py --config experiments/configs/context_encoder_cifar10.py:quick --workdir runs/context_encoder_quick
    Hardware: 2-core CPU, 1 device. Encoder widths (32, 64, 128) (32 -> 4 px), bottleneck 512
    (the official 4000 in `full`), decoder and discriminator at width 32, batch 64, 20 epochs.
    The run folder gets inpaintings.png (held-out test images: input / inpainted / original);
    the report adds the held-out squared error in the hole ("hole_mse", pixels in [0, 1]) and
    that of the mean fill ("mean_fill_mse").
    Measured on this 2-core CPU (2026-12-03, test split): 74 s training (~1,300 images/s), 123 s
    evaluation. kNN k=20 41.49 vs 40.61 for the random-init encoder, k=200 41.10 vs 34.61, linear
    50.34 vs 46.51; held-out squared error in the hole 0.0302 vs 0.0559 for the mean fill (-46%).
    Validation split (--config.eval.split=validation): 20 epochs kNN 39.76 / linear 47.95, 60
    epochs 39.76 / 50.12 (random init 34.94 / 49.16): 20 kept (the paper's optimizer, not tuned).
  full: the official widths (encoder and discriminator 64-128-256, decoder 64, bottleneck 4000),
    batch 64, Adam 2e-4 (generator 2e-3), 100 epochs; use with the full dataset:
    --config.data.kind=tfds --config.data.name=cifar10.
For ImageNet see context_encoder_imagenet.py.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, train_config

VARIANTS = ("quick", "full")


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of context_encoder_cifar10; expected one of {VARIANTS}")
  quick = arg == "quick"
  c = ml_collections.ConfigDict()
  c.method = "context_encoder"
  c.seed = 0
  c.data = data_config("cifar10")
  c.model = ml_collections.ConfigDict(dict(name="dcgan", widths=(32, 64, 128) if quick else (64, 128, 256),
                                           first_norm=False, pool_grid=4, dtype="float32"))
  c.method_kwargs = ml_collections.ConfigDict(dict(
      image_size=32, mask="center", overlap=1, band_weight=10.0, known_weight=1.0, l2_weight=0.999,
      bottleneck=512 if quick else 4000, decoder_width=32 if quick else 64,
      disc_widths=(32, 64) if quick else (64, 128), crop_fraction=1.0, eval_crop_fraction=1.0, flip_p=0.5))
  c.train = train_config(batch_size=64, epochs=20 if quick else 100, optimizer="adamw", base_lr=2e-4,
                         lr_scaling="none", weight_decay=0.0, warmup_epochs=0, end_lr=2e-4, b1=0.5,
                         checkpoint_every=500 if quick else 5000, log_every=25 if quick else 100)
  c.eval = eval_config(pretext_epochs=1)
  return c
