"""RotNet (Gidaris, Singh & Komodakis, ICLR 2018, "Unsupervised Representation Learning by
Predicting Image Rotations").

Each training image is shown in all four rotations 0/90/180/270 degrees counter-clockwise
(labels 0..3, Eq. (1)-(3) of the paper: the loss averages the cross-entropy over the four
rotations of every image, which is "all rotations in the same mini-batch", their Sec. 2.3 and
Table 5 of the appendix). The rotations are made in tf.data (`ops.rotations`) and stacked
image-major, rows `4i .. 4i+3` of the flattened batch being image `i` at 0, 90, 180, 270
degrees, exactly `jax_ssl.losses.rotate_batch` of the unrotated batch (tested). A classifier
(linear by default) on the trunk's pooled features predicts the rotation.

Evaluation: `embed` gives the trunk's pooled features of the whole (unrotated) image;
`embed_blocks` the pooled output of every stage, for the paper's per-block probes (Sec. 3.1,
Table 1: the features peak at intermediate blocks).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.data import ops
from jax_ssl.methods._base import Method
from jax_ssl.methods._common import Normalizer, eval_input, module_signature, square_view
from jax_ssl.methods._pretext import TiledClassifier


class RotNet(Method):
  """Rotation prediction.

  Args:
    backbone: Flax trunk, images [N, H, W, 3] -> pooled features [N, F] (`train=`,
      `return_blocks=` as `models.ResNet`).
    image_size: side of the (square) training images; larger images are randomly cropped to
      it (after a shorter-side resize to `image_size / eval_crop_fraction`), CIFAR-size ones pass.
    head_hidden_dims: hidden layers of the rotation classifier; () = linear (as the paper's
      ResNet/NIN heads after global pooling).
    pad_crop: CIFAR augmentation of the paper's code: zero-pad 4 and random crop (0 = off).
    flip_p: horizontal flip probability (applied before rotating).
    mean, std: per-channel normalization.
    eval_crop_fraction: centre-crop fraction of the evaluation view.
  """

  name = "rotnet"

  def __init__(self, *, backbone: nn.Module, image_size: int, head_hidden_dims: Sequence[int] = (),
               pad_crop: int = 4, flip_p: float = 0.5, mean=ops.CIFAR10_MEAN, std=ops.CIFAR10_STD,
               eval_crop_fraction: float = 0.875):
    self.model = TiledClassifier(backbone, num_classes=4, embed_dim=None, head_hidden_dims=tuple(head_hidden_dims))
    self.image_size = image_size
    self.pad_crop = pad_crop
    self.flip_p = flip_p
    self.normalize = Normalizer(mean, std)
    self.eval_crop_fraction = eval_crop_fraction

  # -- data
  def base_view(self, example, seed):
    """The augmented, normalized, unrotated image [S, S, 3] of one example."""
    s_crop, s_flip = ops.split_seed(seed, 2)
    img = square_view(ops.to_float(example["image"]), s_crop, size=self.image_size,
                      crop_fraction=self.eval_crop_fraction)
    if self.pad_crop:
      img = ops.pad_and_crop(img, s_crop, pad=self.pad_crop)
    img = ops.random_flip(img, s_flip, self.flip_p)
    return self.normalize(img)

  def make_views(self, example, seed):
    rotated, labels = ops.rotations(self.base_view(example, seed))
    return {"rotations": rotated, "rotation_label": labels}

  def eval_view(self, image):
    return eval_input(image, size=self.image_size, normalize=None, crop_fraction=self.eval_crop_fraction)

  # -- model
  @staticmethod
  def _flat(batch):
    x = batch["rotations"]  # [B, 4, H, W, 3] -> image-major [4B, 1, H, W, 3]
    return x.reshape((-1, 1) + x.shape[2:]), batch["rotation_label"].reshape(-1)

  def init(self, rng, batch):
    x, _ = self._flat(batch)
    variables = self.model.init(rng, jnp.asarray(x), train=True)
    return variables["params"], {"batch_stats": variables["batch_stats"]}

  def loss(self, params, state, batch, rng, step):
    del rng, step
    x, labels = self._flat(batch)
    logits, updates = self.model.apply({"params": params, **state}, x, train=True, mutable=["batch_stats"])
    loss = losses.classification_loss(logits, labels)
    metrics = {"rotation_acc": losses.accuracy(logits, labels)}
    return loss, ({"batch_stats": updates["batch_stats"]}, metrics)

  def logits(self, params, state, batch):
    """Inference-mode rotation logits [4B, 4] and labels [4B] of a `make_views` batch."""
    x, labels = self._flat(batch)
    return self.model.apply({"params": params, **state}, x, train=False), labels

  def embed(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method=TiledClassifier.features)

  def embed_blocks(self, params, state, images):
    return self.model.apply({"params": params, **state}, images, method=TiledClassifier.block_features)

  def signature(self):
    return {"method": self.name, "model": module_signature(self.model)}
