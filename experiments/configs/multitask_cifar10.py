"""Multi-task self-supervision (Doersch & Zisserman, ICCV 2017) on CIFAR-10: rotation
prediction (RotNet) and relative patch position (Context Prediction) on ONE shared trunk.

`jax_ssl.methods.MultiTask`: one ResNet trunk, one head per task, the losses summed
(`method_kwargs.weights`), each task with its own views of every image. The tasks and their
geometry are those of `rotnet_cifar10.py:quick` and `context_hymenoptera.py:cifar`; add or
drop a task under `method_kwargs.tasks` (any registered single-phase method whose network
names its trunk `backbone`). Evaluation: kNN / linear probe on the shared trunk's features
(RotNet's 32 px evaluation view).

Variants (the argument after the colon):
  quick: the CPU run on the shared CIFAR-10 subset (4,153 train / 1,017 test).
    python experiments/main.py --config experiments/configs/multitask_cifar10.py:quick --workdir runs/multitask_quick
    ResNet-18 (CIFAR stem) at width 16, batch 64 images (each gives 4 rotations and one patch
    pair), 6 epochs, AdamW 3e-3 with 1 warm-up epoch and cosine decay. Not yet measured on
    the shared data: the contract suite trains it for two steps on 1 and 8 devices.
  full: width 64, 100 epochs, SGD 0.1 with momentum, weight decay 5e-4 (RotNet's CIFAR recipe).
  color_quick: RotNet and Colorization on one trunk (the paper's rotation-free task set had
    colorization; here with rotation as the RGB task). Colorization feeds the trunk the grey
    sRGB image of each crop's lightness (`trunk_input="gray"`, normalized as the RGB tasks) so
    both tasks share the RGB trunk; its colour prior comes from the training images.
    python experiments/main.py --config experiments/configs/multitask_cifar10.py:color_quick --workdir runs/multitask_color
    Same trunk and schedule as `quick`. Measured on this 2-core CPU (2026-12-03, test split):
    415 s training, 65 s evaluation; kNN k=20 39.53 vs 27.04 for the random-init trunk (RotNet
    alone, rotnet_cifar10.py:quick: 34.51), linear 42.97 vs 30.58. Not tuned (one run).
  exemplar_quick: RotNet and Exemplar-CNN on one trunk (the paper's rotation-free set had
    exemplar). Exemplar runs with one seed per training image (`per_image=True`: class i = a
    16 px seed of image i, the images stay the source RotNet reads), `exemplar_cifar10.py:quick`'s
    transformations; num_seeds must be the training set's size (4,153 here; 3,738 with
    --config.eval.split=validation: --config.method_kwargs.tasks.exemplar.num_seeds=3738).
    python experiments/main.py --config experiments/configs/multitask_cifar10.py:exemplar_quick --workdir runs/multitask_exemplar
    Same trunk and schedule as `quick`. Measured on this 2-core CPU (2026-12-03, test split):
    391 s training, 65 s evaluation; kNN k=20 35.40 vs 27.04 for the random-init trunk (RotNet
    alone 34.51), linear 37.07 vs 30.58 (RotNet alone 41.69); the 4,153-way exemplar task barely
    trains in 6 epochs (loss 7.67 from ln 4153 = 8.33). Not tuned (one run).
"""

import ml_collections

from experiments.configs import exemplar_cifar10, rotnet_cifar10
from experiments.configs._common import data_config, eval_config, model_config


VARIANTS = ('quick', 'full', 'color_quick', 'exemplar_quick')


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of multitask_cifar10; expected one of {VARIANTS}")
  color, exemplar = arg == "color_quick", arg == "exemplar_quick"
  arg = "quick" if color or exemplar else arg
  quick = arg == "quick"
  c = ml_collections.ConfigDict()
  c.method = "multitask"
  c.seed = 0

  c.data = data_config("cifar10")
  c.model = model_config(depth=18, width=16 if quick else 64, stem="cifar")

  c.method_kwargs = ml_collections.ConfigDict()
  c.method_kwargs.tasks = ml_collections.ConfigDict()
  c.method_kwargs.tasks.rotnet = rotnet_cifar10.get_config(arg).method_kwargs.to_dict()
  c.method_kwargs.tasks.context = dict(patch=10, gap=2, jitter=1, area_range=None, color="projection",
                                       downsample_p=0.0, min_area=100, embed_dim=256 if quick else 1024,
                                       head_hidden_dims=(256,) if quick else (1024,), eval_size=32,
                                       eval_crop_fraction=1.0)
  c.method_kwargs.weights = dict(rotnet=1.0, context=1.0)
  c.method_kwargs.eval_task = "rotnet"  # RotNet's evaluation view (the config's task keys are sorted)
  if color:
    del c.method_kwargs.tasks["context"]
    c.method_kwargs.tasks.colorization = dict(image_size=32, grid=10, num_neighbors=5, sigma=5.0, lam=0.5,
                                              prior_sigma=5.0, prior_images=50000, decoder_width=128, flip_p=0.5,
                                              eval_crop_fraction=1.0, temperature=0.38, trunk_input="gray")
    c.method_kwargs.weights = dict(rotnet=1.0, colorization=1.0)
  if exemplar:
    del c.method_kwargs.tasks["context"]
    ex = exemplar_cifar10.get_config("quick").method_kwargs.to_dict()
    c.method_kwargs.tasks.exemplar = dict(ex, num_seeds=4153, per_image=True)
    c.method_kwargs.weights = dict(rotnet=1.0, exemplar=1.0)

  c.train = rotnet_cifar10.get_config(arg).train  # RotNet's CIFAR recipe, quick and full

  c.eval = eval_config(per_block=True)
  return c
