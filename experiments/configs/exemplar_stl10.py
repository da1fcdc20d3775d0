"""Exemplar-CNN (Dosovitskiy et al., NIPS 2014) on STL-10, the paper's setting.

Variant "paper" (the only one):
  python experiments/main.py --config experiments/configs/exemplar_stl10.py --workdir runs/exemplar_stl10 \
      --config.data.data_dir=/path/to/tensorflow_datasets
  Seeds: N = 16,000 patches of 32 x 32 from distinct images of STL-10's 100,000 "unlabelled"
  96 px images, at regions of 32-48 px (up to half the side; the paper: "varying positions and
  scales") drawn by their squared gradient; the paper's transformation ranges; N-way softmax.
  Trunk: ResNet-18 (CIFAR stem) at width 64 with the 512-unit hidden layer (the paper's
  64c5-64c5-128c5-512f, its 92c5-256c5-512c5-1024f for the larger one, are not library
  backbones); SGD-like length: 100 epochs of the seeds at batch 128, AdamW 2e-3, cosine.
  Features: the trunk on whole 96 px images; kNN / linear probe on STL-10's labelled "train"
  (5,000) and "test" (8,000). Expected (paper Table 1, an SVM on pooled features of all layers
  of its 92c5-256c5-512c5-1024f network): 72.8% on STL-10; this ResNet-18 has not been run here.
  Hardware: one accelerator.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config

VARIANTS = ("paper",)


def get_config(arg: str = "paper") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of exemplar_stl10; expected one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.method = "exemplar"
  c.seed = 0
  c.data = data_config("imagenet2012")  # a TFDS block, renamed below
  c.data.name = "stl10"
  c.data.train_split = "unlabelled"
  c.data.eval_train_split = "train"
  c.data.test_split = "test"
  c.data.mean, c.data.std = (0.447, 0.440, 0.407), (0.260, 0.257, 0.271)
  c.model = model_config(depth=18, width=64, stem="cifar")
  c.method_kwargs = ml_collections.ConfigDict(dict(
      patch=32, num_seeds=16000, max_region=0.5, seed_rng=0, translation=0.2, scale=(0.7, 1.4), rotation=20.0,
      pc_scale=(0.5, 2.0), sv_power=(0.25, 4.0), sv_mult=(0.7, 1.4), sv_add=(-0.1, 0.1), hue=0.1,
      head_hidden_dims=(512,), eval_size=96, eval_crop_fraction=1.0))
  c.train = train_config(batch_size=128, epochs=100, optimizer="adamw", base_lr=2e-3, lr_scaling="none",
                         weight_decay=1e-4, warmup_epochs=1, checkpoint_every=5000, log_every=100)
  c.eval = eval_config(batch_size=512, baselines=False, linear_iters=1000)
  return c
