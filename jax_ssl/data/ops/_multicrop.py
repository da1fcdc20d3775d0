"""Multi-crop (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting
Cluster Assignments", Sec. 3.2): a few large crops plus several small, low-resolution crops
of the same image, each with its own crop-scale range and independent augmentations.

Follows ``MultiCropDataset`` of the official facebookresearch/swav ``src/multicropdataset.py``:
group ``g`` contributes ``counts[g]`` crops of side ``sizes[g]``, each a random resized crop
with area fraction in ``scales[g]`` (aspect ratio 3/4-4/3), a horizontal flip, SimCLR's colour
distortion and (optionally) Gaussian blur, in that order. Crops come out group by group (all
large crops first), which is the order the loss and the resolution grouping of the backbone
rely on. ImageNet setting: ``sizes=(224, 96), counts=(2, 6), scales=((0.14, 1), (0.05, 0.14))``.
"""

from __future__ import annotations

from typing import Sequence, Tuple

from jax_ssl.data.ops import _base as _ops


def multicrop_spec(sizes: Sequence[int], counts: Sequence[int],
                   scales: Sequence[Tuple[float, float]]) -> list:
  """Validates a multi-crop spec; returns ``[(size, (lo, hi)), ...]`` one entry per crop.

  Raises ValueError naming the problem (mismatched lengths, non-positive sizes or counts,
  scale ranges outside ``(0, 1]`` or with ``lo > hi``).
  """
  sizes, counts, scales = list(sizes), list(counts), [tuple(s) for s in scales]
  if not (len(sizes) == len(counts) == len(scales)) or not sizes:
    raise ValueError(f"multi-crop needs one size, count and scale range per group; got sizes={sizes}, "
                     f"counts={counts}, scales={scales}")
  out = []
  for size, count, scale in zip(sizes, counts, scales):
    if int(size) < 1 or int(count) < 1:
      raise ValueError(f"multi-crop sizes and counts must be positive; got size {size}, count {count}")
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
      raise ValueError(f"multi-crop scale range must satisfy 0 < lo <= hi <= 1; got {scale}")
    out += [(int(size), (float(scale[0]), float(scale[1])))] * int(count)
  return out


def multicrop_views(image, seed, *, sizes: Sequence[int], counts: Sequence[int],
                    scales: Sequence[Tuple[float, float]], crop_ratio=(3 / 4, 4 / 3),
                    flip_p: float = 0.5, jitter_strength: float = 1.0, jitter_p: float = 0.8,
                    gray_p: float = 0.2, blur_p: float = 0.5, solarize_p: float = 0.0) -> list:
  """Multi-crop views of one float image ``[H, W, 3]`` in ``[0, 1]``.

  Args:
    image: float32 ``[H, W, 3]`` in ``[0, 1]`` (see :func:`to_float`).
    seed: ``[2]`` stateless seed; crop ``i`` uses the ``i``-th child seed, so the views are a
      pure function of (image, seed), eagerly or inside ``tf.data``.
    sizes, counts, scales: per resolution group, the crops' side, how many, and the range of
      their area fraction.
    crop_ratio, flip_p, jitter_strength, jitter_p, gray_p, blur_p, solarize_p: the per-crop
      augmentations of :func:`simclr_view` (SwAV's ImageNet setting: strength 1.0, blur 0.5).

  Returns:
    A list of ``sum(counts)`` float32 tensors ``[sizes[g], sizes[g], 3]`` in ``[0, 1]``, group by
    group in the order given.
  """
  spec = multicrop_spec(sizes, counts, scales)
  seeds = _ops.split_seed(seed, len(spec))
  return [_ops.simclr_view(image, s, size=size, crop_scale=scale, crop_ratio=tuple(crop_ratio), flip_p=flip_p,
                           jitter_strength=jitter_strength, jitter_p=jitter_p, gray_p=gray_p, blur_p=blur_p,
                           solarize_p=solarize_p)
          for s, (size, scale) in zip(seeds, spec)]


def resolution_groups(shapes: Sequence[Tuple[int, ...]]) -> list:
  """Runs of consecutive equal shapes: ``[(start, stop), ...]`` (``torch.unique_consecutive`` in
  the official code), so the backbone runs once per resolution on the concatenated crops.

  >>> resolution_groups([(32, 32, 3), (32, 32, 3), (16, 16, 3), (16, 16, 3), (16, 16, 3)])
  [(0, 2), (2, 5)]
  """
  groups, start = [], 0
  for i in range(1, len(shapes) + 1):
    if i == len(shapes) or tuple(shapes[i]) != tuple(shapes[start]):
      groups.append((start, i))
      start = i
  return groups


__all__ = ["multicrop_spec", "multicrop_views", "resolution_groups"]
