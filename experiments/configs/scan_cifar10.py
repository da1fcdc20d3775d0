"""SCAN (clustering, then self-labelling) on CIFAR-10, from a pretext run of this library.

The three stages are three runs; each of the last two names the run before it in
`train.init_from` (the defaults are the quick runs' workdirs):

    make demo                                                          # 1. SimCLR pretext
    python experiments/main.py --config experiments/configs/scan_cifar10.py:quick \\
        --workdir runs/scan_cifar10_quick                               # 2. SCAN
    python experiments/main.py --config experiments/configs/scan_cifar10.py:selflabel_quick \\
        --workdir runs/scan_selflabel_cifar10_quick                     # 3. self-labelling

Variants (the argument after the colon):
  quick: SCAN on the shared CIFAR-10 subset (4,153 train / 1,017 test) from the SimCLR demo
    (`runs/simclr_cifar10_quick`; the backbone must be the same: ResNet-18 CIFAR stem, width 16).
    Hardware: 2-core CPU, 1 device. Budget: 10 minutes of training + evaluation.
    Recipe: the official CIFAR-10 SCAN (configs/scan/scan_cifar10.yml: 20 neighbours, entropy
    weight 5, one head of 10 clusters, the "ours" strong augmentation, the whole network
    trained, Adam at a constant rate, weight decay 1e-4, batch 128) for 10 epochs instead of
    50, at 1e-3 instead of 1e-4.
    Validation split (--config.eval.split=validation, 290 steps, 2026-12-03; cluster ACC / NMI /
    ARI of the 415 held-out images): lr 1e-4: 26.51 / 19.09 / 8.66 (the network barely leaves
    the uniform prediction: consistency 2.30 -> 2.12); 1e-3: 31.08 / 23.77 / 11.33; 3e-3 for
    12 epochs: 27.23 / 19.92 / 8.67; k-means on the features 29.6-30.1. The mined neighbours
    share the anchor's class 26.4% of the time (the demo's SimCLR is weak: kNN 41%; the
    paper's CIFAR-10 neighbours are about 88% right).
    Measured (this config, test split, 2-core CPU, 2026-12-03): 320 steps in 425 s (mining
    included), evaluation 80 s, 8 min 36 s wall; cluster ACC / NMI / ARI 29.20 / 19.15 / 10.24
    against k-means on the SimCLR demo's features 26.25 / 16.46 (+2.95: short of the issue's
    +5); kNN k=20 37.95 (random init 26.25), linear 45.82.
  selflabel_quick: self-labelling from the quick SCAN run (`runs/scan_cifar10_quick`):
    threshold 0.99, class-balanced, strong augmentation, Adam constant 1e-4, weight decay 1e-4
    (configs/selflabel/selflabel_cifar10.yml) at batch 256 for 10 epochs (official 1000, 200).
    Validation split (from the lr 1e-3 SCAN run above): at 0.99 almost nothing is confident
    (0.04% of a batch: the quick SCAN model's predictions are soft), so the run changes little;
    at 0.9 (7-16% confident) the ACC fell from 31.08 to 27.23: the official 0.99 is kept.
    Measured (test split, from the quick SCAN run, 2026-12-03): 160 steps in 290 s, 6 min 46 s
    wall; ACC / NMI / ARI 26.45 / 18.19 / 9.66 (29.20 / 19.15 / 10.24 before): 0.04% -> 2.3%
    of a batch confident over the run, too few targets to help.
  full / selflabel_full: the official CIFAR-10 runs (ResNet-18, CIFAR stem, width 64; SCAN 50
    epochs at batch 128, self-labelling 200 epochs at batch 1000, Adam 1e-4). Use with the full
    dataset (--config.data.kind=tfds --config.data.name=cifar10) and a pretext run of the same
    backbone (`simclr_cifar10.py:full` with --config.model.depth=18). Expected (paper, Table
    3): ACC 81.8 after SCAN, 88.3 after self-labelling.
Deviation: AdamW (decoupled weight decay) where the official uses torch Adam's L2 term; at
1e-4 neither moves the weights much.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('quick', 'selflabel_quick', 'full', 'selflabel_full')


def get_config(arg: str = "full") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of scan_cifar10; expected one of {list(VARIANTS)}")
  quick = arg.endswith("quick")
  selflabel = arg.startswith("selflabel")
  c = ml_collections.ConfigDict()
  c.method = "scan_selflabel" if selflabel else "scan"
  c.seed = 0
  c.data = data_config("cifar10")
  c.model = model_config(depth=18, width=16 if quick else 64, stem="cifar")

  m = c.method_kwargs = ml_collections.ConfigDict()
  m.num_clusters = 10
  if selflabel:
    m.threshold = 0.99
    m.class_balance = True
  else:
    m.num_heads = 1
    m.num_neighbors = 20
    m.entropy_weight = 5.0
    m.train_backbone = True
  m.augmentation = "strong"
  m.num_strong_ops = 4
  m.cutout = 16
  m.image_size = 32
  m.eval_crop_fraction = 1.0

  if selflabel:
    batch, epochs, lr = (256, 10, 1e-4) if quick else (1000, 200, 1e-4)
    init_from = "runs/scan_cifar10_quick" if quick else "runs/scan_cifar10_full"
  else:
    batch, epochs, lr = (128, 10, 1e-3) if quick else (128, 50, 1e-4)
    init_from = "runs/simclr_cifar10_quick" if quick else "runs/simclr_cifar10_full"
  c.train = train_config(
      batch_size=batch,
      epochs=epochs,
      optimizer="adamw",
      base_lr=lr,
      lr_scaling="none",
      weight_decay=1e-4,
      warmup_epochs=0,
      end_lr=lr,  # constant (the official scheduler: constant)
      checkpoint_every=200 if quick else 2000,
      log_every=10 if quick else 100,
      init_from=init_from,
  )
  c.eval = eval_config()
  return c
