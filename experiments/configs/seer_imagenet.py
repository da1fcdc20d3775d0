"""SEER (Goyal et al. 2021, "Self-supervised Pretraining of Visual Features in the Wild"): SwAV on
a RegNetY, with SEER's head, prototypes, crops and grouped BatchNorm.

Read from VISSL's SEER configs (facebookresearch/vissl configs/config/pretrain/swav/): the trunk
RegNet-256Gf (`models/regnet256Gf_1.yaml`: depth 27, w_0 640, w_a 230.83, w_m 2.53, group width
373: `build_backbone("regnet", variant="Y-256GF")`, 1.28B trunk parameters), the head
10444-8192-8192-256 without BatchNorm and 16,000 prototypes (`heads/d10444_d8192_d8192_d256_proto16k.yaml`),
multi-crop 2 x 160 + 4 x 96 at areas (0.14, 1) / (0.05, 0.14), colour distortion 1.0 and blur
p 0.5 (`transforms/multicrop_6crop_2x160_4x96.yaml`), LARS (trust 0.001), temperature 0.1,
epsilon 0.05, codes from the two large crops (`swav_8node_resnet.yaml`). From the issue / the
paper as recalled here, not checked against its text in this sandbox: 10 Sinkhorn iterations,
batch 8,192 (16 per GPU on 512 GPUs), BatchNorm synchronized over groups of 64 GPUs (= 1,024
consecutive examples: `bn_group_size`, `models.GroupedBatchNorm`), lr 0.15 x batch / 256 with
warm-up and cosine decay, weight decay 1e-5.

Variants (the argument after the colon):
  256gf: the SEER model. Data: SEER trained on 1B uncurated Instagram images (one pass, ~122K
    steps at 8,192); this config reads ImageNet by name (--config.data.data_dir=...), 100 epochs.
    Status: builds, and its recipe runs on a tiny RegNet (tests/test_imagenet_configs.py, the
    opt-in `make test-imagenet`). NOT yet runnable at this scale on this trainer: the state is
    replicated on every device (1.28B parameters: 5.1 GB of float32 parameters, as much again for
    LARS's momentum and for the gradients, before activations), and neither rematerialization
    nor parameter sharding (issue 19, items 3-4) exists yet; memory and throughput were not
    measured (no accelerator here).
  y400mf: the same recipe on RegNetY-400MF (4.3M parameters) at batch 256 (groups of 64
    examples, lr 0.15): a size that runs replicated on one accelerator host.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, train_config

VARIANTS = ("256gf", "y400mf")


def get_config(arg: str = "256gf") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of seer_imagenet; expected one of {VARIANTS}")
  big = arg == "256gf"
  c = ml_collections.ConfigDict()
  c.method = "swav"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = ml_collections.ConfigDict(dict(name="regnet", variant="Y-256GF" if big else "Y-400MF", stem="imagenet",
                                           bn_group_size=1024 if big else 64, dtype="bfloat16"))
  m = c.method_kwargs = ml_collections.ConfigDict()
  m.crop_sizes = (160, 96)
  m.crop_counts = (2, 4)
  m.crop_scales = ((0.14, 1.0), (0.05, 0.14))
  m.proj_hidden_dims = (8192, 8192) if big else (2048,)
  m.proj_dim = 256 if big else 128
  m.proj_bn = False
  m.num_prototypes = 16000 if big else 3000
  m.temperature = 0.1
  m.epsilon = 0.05
  m.sinkhorn_iters = 10
  m.assign_crops = (0, 1)
  m.queue_length = 0
  m.queue_start_epoch = 0
  m.freeze_prototypes_epochs = 1.0
  m.collapse_prototypes = 1
  m.eval_crop_fraction = 0.875
  m.view_kwargs = ml_collections.ConfigDict(dict(jitter_strength=1.0, jitter_p=0.8, gray_p=0.2, blur_p=0.5))
  c.train = train_config(batch_size=8192 if big else 256, epochs=100, optimizer="lars", base_lr=0.15,
                         lr_scaling="linear", weight_decay=1e-5, warmup_epochs=1.0, checkpoint_every=2000,
                         log_every=50)
  c.eval = eval_config(batch_size=1024, baselines=False, linear_iters=1000, linear_epochs=90.0, linear_batch=1024,
                       finetune_batch=1024)
  return c
