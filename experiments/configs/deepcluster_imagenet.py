"""DeepCluster (v1) on ImageNet-1k: the official settings (facebookresearch/deepcluster main.py).

Variants (the argument after the colon):
  resnet50 (default): 10,000 clusters every epoch, k-means with 20 iterations on all 1.28M
    features, PCA-whitened to 256 dimensions and L2-normalized; Sobel input; random resized
    crop 224 and flip; SGD lr 0.05, momentum 0.9, weight decay 1e-5, batch 256, 500 epochs
    (the paper's AlexNet runs); the classifier 2 x 4096 with dropout 0.5 between the backbone
    and the top layer, as the official AlexNet / VGG classifier.
    python experiments/main.py --config experiments/configs/deepcluster_imagenet.py --workdir runs/deepcluster_in1k \
      --config.data.data_dir=/path/to/tfds
    Hardware: 8+ accelerators. A pass holds the features (1.28M x 4096 float32 = 21 GB over
    the devices), the PCA covariance (4096^2) and 10,000 centroids of 256 dims.
    Expected: the paper reports AlexNet (conv5 linear ~ 36-39% depending on layer); a
    ResNet-50 has no published DeepCluster-v1 figure.
Deviation: AlexNet and VGG-16 (the paper's networks) are not in the library's backbones; the
official classifier head sits on a ResNet-50 instead. Cosine decay instead of a constant rate.
"""

import ml_collections

from experiments.configs._common import data_config, eval_config, model_config, train_config


VARIANTS = ('resnet50',)


def get_config(arg: str = "resnet50") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"unknown variant {arg!r} of deepcluster_imagenet; expected one of {list(VARIANTS)}")
  c = ml_collections.ConfigDict()
  c.method = "deepcluster"
  c.seed = 0
  c.data = data_config("imagenet2012")
  c.model = model_config(depth=50, width=64, stem="imagenet")

  m = c.method_kwargs = ml_collections.ConfigDict()
  m.num_clusters = 10000
  m.pca_dim = 256
  m.kmeans_iters = 20
  m.head_hidden_dims = (4096, 4096)
  m.dropout = 0.5
  m.sobel = True
  m.reassign_epochs = 1
  m.image_size = 224
  m.crop_scale = (0.08, 1.0)
  m.eval_crop_fraction = 0.875

  c.train = train_config(
      batch_size=256,
      epochs=500,
      optimizer="sgd",
      base_lr=0.05,
      lr_scaling="none",
      weight_decay=1e-5,
      warmup_epochs=0,
      checkpoint_every=5000,
      log_every=100,
  )
  c.eval = eval_config(batch_size=1024, baselines=False, linear_iters=1000, linear_epochs=90.0, linear_batch=1024,
                       finetune_batch=1024)
  return c
