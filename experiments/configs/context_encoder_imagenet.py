"""Context Encoders (Pathak et al., CVPR 2016) on ImageNet with the official code's settings.

Variants (the argument after the colon):
  center: the official centre-inpainting command (README of pathak22/context-encoder:
    overlapPred=4 wtl2=0.999 nBottleneck=4000 loadSize=350 fineSize=128).
    python experiments/main.py --config experiments/configs/context_encoder_imagenet.py:center \
        --workdir runs/context_encoder_in1k --config.data.data_dir=/path/to/tensorflow_datasets
    Images: shorter side resized to 350, a random 128 x 128 crop (crop_fraction 128 / 350), flips;
    the central 64 x 64 square is predicted, the input hole is 56 x 56 filled with the official
    (117, 104, 123) / 255, L2 weight 10x on the 4 px band; joint loss 0.999 L2 + 0.001
    adversarial. Encoder = the official netE (`DCGANEncoder` 64-64-128-256-512, 128 -> 4 px,
    BatchNorm but on the first layer, LeakyReLU 0.2), bottleneck 4000, decoder ngf 64 (4 -> 64 px),
    discriminator 64-128-256-512 on the 64 px centre. Adam 2e-4, beta1 0.5, constant (generator
    2e-3: the official optimStateG), batch 64, 25 epochs (train.lua's niter default).
    Hardware: one accelerator (batch 64); more devices split the batch.
  random: the paper's random-region masks (`train_random.lua`: 20-30% of the 128 px image in
    blobs, the whole image predicted, useOverlapPred=0), discriminator on the whole image
    (64-64-128-256-512); otherwise as `center`.
Features: every encoder layer max-pooled to 4 x 4 and concatenated (16,384 dimensions) for kNN /
linear probes, or the encoder fine-tuned (--mode finetune). Expected (paper, Table 2, an AlexNet
encoder fine-tuned on PASCAL VOC 2007): classification 56.5% mAP, detection 44.5%, segmentation
30.0% mean IU; this DCGAN-style encoder has not been run on ImageNet here.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, train_config

VARIANTS = ("center", "random")


def get_config(arg: str = "center") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of context_encoder_imagenet; expected one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.method = "context_encoder"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = ml_collections.ConfigDict(dict(name="dcgan", widths=(64, 64, 128, 256, 512), first_norm=False,
                                           pool_grid=4, dtype="float32"))
  c.method_kwargs = ml_collections.ConfigDict(dict(
      image_size=128, mask=arg, overlap=4, band_weight=10.0, known_weight=1.0, l2_weight=0.999,
      bottleneck=4000, decoder_width=64,
      disc_widths=(64, 128, 256, 512) if arg == "center" else (64, 64, 128, 256, 512),
      crop_fraction=128 / 350, eval_crop_fraction=0.875, flip_p=0.5, fill=(117 / 255, 104 / 255, 123 / 255)))
  c.train = train_config(batch_size=64, epochs=25, optimizer="adamw", base_lr=2e-4, lr_scaling="none",
                         weight_decay=0.0, warmup_epochs=0, end_lr=2e-4, b1=0.5, checkpoint_every=5000, log_every=100)
  c.eval = eval_config(batch_size=512, baselines=False, linear_iters=1000, pretext_epochs=1)
  return c
