"""Every `*_imagenet` config trains a few steps on an ImageNet-shaped TFDS dataset read by name.

The dataset is prepared offline from the ants/bees photographs (JPEGs of varying size, as
ImageNet's) as ArrayRecord shards in a temporary data_dir, streamed by index (storage
"files", the path ImageNet takes), with each config's real preprocessing: 224-pixel views,
multi-crop, patches, FH masks. Only the network is shrunk (a five-layer ConvNet with the
ResNet's 32x downsampling, float32: the CPU has no fast bfloat16) and the batch, so that the
smoke run takes seconds; the run must finish its steps with finite losses.
"""

import json
import os

import ml_collections
import numpy as np
import pytest

from jax_ssl import data
from tests.helpers import once

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HYMENOPTERA = os.path.join(ROOT, "..", "shared", "data", "hymenoptera_data")
# Opt-in (`make test-imagenet`): about 6 minutes of CPU on the 2-core machine, more than the
# default suite's 20-minute budget allows today.
pytestmark = [pytest.mark.slow, pytest.mark.imagenet_smoke, pytest.mark.xdist_group("test_imagenet_configs")]

CONFIGS = [("swav_imagenet", "bs256"), ("detcon_imagenet", "b"), ("detcon_imagenet", "s"),
           ("rotnet_imagenet", "full"), ("context_imagenet", "full"), ("jigsaw_imagenet", "full"),
           ("damaged_jigsaw_imagenet", "full"),
           ("deepcluster_imagenet", "resnet50"), ("deepcluster_v2_imagenet", "800ep"), ("sela_imagenet", "10x3k"), ("colorization_imagenet", "full"),
           ("scan_imagenet", "scan"), ("scan_imagenet", "selflabel"), ("smog_imagenet", "400ep"),
           ("context_encoder_imagenet", "center"), ("context_encoder_imagenet", "random"), ("dcgan_imagenet", "32px"),
           ("seer_imagenet", "256gf")]

# Zhang et al. train on 176 x 176 crops, Pathak et al. on 128 x 128, Radford et al.'s features on 32 x 32.
_TRAIN_SIDE = {"colorization_imagenet": 176, "context_encoder_imagenet": 128, "dcgan_imagenet": 32}


@pytest.fixture
def imagenet_shaped(tmp_path_factory):
  """data_dir with "hymenoptera_in" (train / validation, 2 classes, JPEGs of varying size)."""
  def make():
    data_dir = str(tmp_path_factory.mktemp("tfds_in"))
    splits, names = {}, None
    for split, folder in (("train", "train"), ("validation", "val")):
      paths, labels, names = data.list_image_folder(HYMENOPTERA, folder, "folders")
      splits[split] = data.folder_split(paths, labels)
    data.build_tfds_dataset("hymenoptera_in", data_dir, splits, class_names=names, num_shards=2)
    return data_dir
  return once("imagenet_shaped", make)


@pytest.mark.parametrize("name,variant", CONFIGS, ids=[f"{n}:{v}" for n, v in CONFIGS])
def test_imagenet_config_trains_on_a_streamed_imagenet_shaped_tfds_dataset(name, variant, imagenet_shaped,
                                                                           tmp_path):
  import importlib

  from experiments import runner

  config = importlib.import_module(f"experiments.configs.{name}").get_config(variant)
  assert config.data.kind == "tfds" and config.data.name == "imagenet2012"
  config.data.name, config.data.data_dir = "hymenoptera_in", imagenet_shaped
  config.data.storage = "files"  # ImageNet's path: streamed from the ArrayRecord shards
  config.data.train_split = "train[:48]"  # a TFDS slice: FH masks of 48 photographs, not 244
  # Five stride-2 convolutions: the 32x-downsampled map of a ResNet (7x7 at 224 px, DetCon's grid).
  config.model = ml_collections.ConfigDict(dict(name="convnet", widths=(8, 8, 16, 16, 32), dtype="float32"))
  config.train.batch_size, config.train.steps, config.train.log_every = 8, 2, 1
  config.train.checkpoint_every = 2
  # Clustering methods: no more clusters than the 48 images (ImageNet's 3000 per head).
  if "num_prototypes" in config.method_kwargs:  # one K (SwAV) or one per head (DeepCluster-v2)
    k = config.method_kwargs.num_prototypes
    config.method_kwargs.num_prototypes = (8,) * len(k) if isinstance(k, (tuple, list)) else 8
  if "num_clusters" in config.method_kwargs:
    config.method_kwargs.num_clusters = 8
  if name == "deepcluster_imagenet":  # the 4096-wide classifier and PCA 256 on 48 images: narrower
    config.method_kwargs.head_hidden_dims, config.method_kwargs.pca_dim = (64, 64), 16
  if name == "scan_imagenet":  # from random init (no pretext run here); 50 neighbours of 48 images: fewer
    config.train.init_from = ""
    if "num_neighbors" in config.method_kwargs:
      config.method_kwargs.num_neighbors = 5
  if name == "smog_imagenet":  # 3000 groups from a 2.46M-row bank: 8 groups, a bank of two steps
    config.method_kwargs.num_groups, config.method_kwargs.bank_size = 8, 32
  if "mask_cache_dir" in config.method_kwargs:
    config.method_kwargs.mask_cache_dir = str(tmp_path / "masks")
  if name == "seer_imagenet":  # SEER's trunk family, tiny: RegNetY blocks with BN over groups of 4 examples
    config.model = ml_collections.ConfigDict(dict(name="regnet", widths=(8, 16, 16, 32), depths=(1, 1, 1, 1),
                                                  group_widths=(4, 8, 8, 8), bn_group_size=4, dtype="float32"))
    config.method_kwargs.proj_hidden_dims, config.method_kwargs.proj_dim = (16, 16), 8
    config.method_kwargs.num_prototypes = 8
  result = runner.run_train(config, str(tmp_path / "run"))
  assert result.step == 2 and not result.preempted and int(result.state.skipped) == 0
  with open(tmp_path / "run" / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f if '"train"' in line]
  assert [r["step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
  assert config.method_kwargs.get("image_size", 224) == _TRAIN_SIDE.get(name, 224)
