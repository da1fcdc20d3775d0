"""Augmentation ops in TensorFlow, with stateless randomness.

Every random op takes a ``seed``: an int32/int64 tensor of shape ``[2]`` (as produced by
``tf.random.experimental.stateless_split``). The same seed gives the same output, eagerly or
inside ``tf.data``, on any machine, which is what makes the input pipeline reproducible and
resumable: the pipeline derives each example's seed from ``(seed, epoch, index)``.

Images are float32 ``[H, W, 3]`` in ``[0, 1]`` (use :func:`to_float` on uint8). Every op keeps
that range. Geometric ops come in two halves, a sampler of the random parameters and a
deterministic op that applies them, so that masks (DetCon) or boxes can follow an image
through the same crop and flip.

Conventions follow the official SimCLR code (google-research/simclr ``data_util.py``):

* :func:`random_resized_crop`: area in ``scale`` (0.08-1) of the image, aspect ratio
  log-uniform in ``ratio`` (3/4-4/3); like torchvision, up to 10 attempts, then the central
  crop at the nearest valid aspect ratio.
* :func:`color_jitter`: SimCLR v2's ``color_jitter_rand``: brightness, contrast, saturation,
  hue in random order, with strengths ``0.8 s, 0.8 s, 0.8 s, 0.2 s``; brightness multiplies by
  ``U[1 - b, 1 + b]``; each step is clipped to ``[0, 1]``.
* :func:`gaussian_blur`: kernel side 10% of the image, sigma ``U[0.1, 2.0]``, reflect padding.
* :func:`random_solarize`: BYOL's ``x < 0.5 ? x : 1 - x``.
"""

from __future__ import annotations

from jax_ssl.data.ops._base import (  # noqa: F401  (the basic ops, re-exported)
    CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, to_float, split_seed, sample_crop_box,
    crop_and_resize, random_resized_crop, sample_flip, flip_left_right, random_flip, rot90, grayscale, sobel, rgb_to_lab, lightness_to_gray,
    random_grayscale, color_jitter, random_color_jitter, color_drop, gaussian_blur, random_gaussian_blur,
    solarize, random_solarize, normalize, simclr_view)
from jax_ssl.data.ops._multicrop import multicrop_spec, multicrop_views, resolution_groups  # noqa: F401
from jax_ssl.data.ops._masks import (binary_masks, color_part, crop_flip_pair, detcon_view,  # noqa: F401
                                     downsample_mask, grid_mask, sample_mask_ids)
from jax_ssl.data.ops._exemplar import exemplar_transform, pixel_pca  # noqa: F401
from jax_ssl.data.ops._inpainting import center_masks, center_region, random_region_mask  # noqa: F401
from jax_ssl.data.ops._patches import *  # noqa: F401,F403  (pretext-task inputs: rotations, context pairs, jigsaw)
from jax_ssl.data.ops._randaugment import STRONG_OPS, cutout, rand_augment, strong_view  # noqa: F401  (SCAN)
