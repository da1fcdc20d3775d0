"""Jigsaw puzzles (Noroozi & Favaro, ECCV 2016) on the shared ants/bees photographs.

The paper's geometry: shorter side resized to 256, a random 225x225 window, 3x3 cells of 75 px,
one 64x64 tile at a random place in each cell; 30% grayscale puzzles, colour channels jittered
by up to 2 px, each tile standardized on its own; P permutations chosen by the paper's
maximal-Hamming greedy selection (Algorithm 1). Context-free network: shared trunk + fc6 per tile,
fc7 and a P-way classifier on the 9 concatenated fc6 outputs.
Evaluation: kNN / linear probe of ants vs bees, trunk features of the whole image (96 px centre
view, standardized per image like the tiles), 244 training photos as the memory bank, 153 val
photos as the test set.

Variants (the argument after the colon):
  quick: the CPU run.
    python experiments/main.py --config experiments/configs/jigsaw_hymenoptera.py:quick --workdir runs/jigsaw_quick
    Hardware: 2-core CPU, 1 device. ResNet-18 with the ImageNet stem (a 64 px tile is 16x16 at the
    first stage) at width 16, fc6 256, fc7 512, P = 100, batch 32 puzzles, 40 epochs of the 244
    photos (280 steps), AdamW 2e-3. Measured on this 2-core CPU: 215 s training (~50 puzzles/s,
    input-pipeline bound: JPEG decoding and resizing), training puzzle accuracy 6-10% over the
    last 60 steps (chance 1%), rising from step ~100; evaluation numbers: README.
  full: P = 1000 (the paper's best), ResNet-18 at width 64, fc6 512, fc7 4096, 400 epochs.
For ImageNet see jigsaw_imagenet.py.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('quick', 'full')


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  if arg not in ("quick", "full"):
    raise ValueError(f"unknown variant {arg!r} of jigsaw_hymenoptera; expected 'quick' or 'full'")
  quick = arg == "quick"
  c = ml_collections.ConfigDict()
  c.method = "jigsaw"
  c.seed = 0

  c.data = data_config("hymenoptera")  # data.mean / std unused: jigsaw standardizes each tile

  c.model = model_config(depth=18, width=16 if quick else 64, stem="imagenet")

  c.method_kwargs = ml_collections.ConfigDict()
  c.method_kwargs.num_permutations = 100 if quick else 1000
  c.method_kwargs.permutation_seed = 0
  c.method_kwargs.permutation_criterion = "mean"
  c.method_kwargs.resize = 256
  c.method_kwargs.crop = 225
  c.method_kwargs.grid = 3
  c.method_kwargs.tile = 64
  c.method_kwargs.gray_p = 0.3
  c.method_kwargs.channel_jitter = 2
  c.method_kwargs.embed_dim = 256 if quick else 512
  c.method_kwargs.head_hidden_dims = (512,) if quick else (4096,)
  c.method_kwargs.eval_size = 96
  c.method_kwargs.eval_crop_fraction = 0.875

  c.train = train_config(
      batch_size=32 if quick else 128,
      epochs=40 if quick else 400,
      optimizer="adamw",
      base_lr=2e-3,
      lr_scaling="none",
      weight_decay=1e-4,
      warmup_epochs=4,
      checkpoint_every=500,
      log_every=14 if quick else 50,
  )

  c.eval = eval_config(batch_size=128)
  return c
