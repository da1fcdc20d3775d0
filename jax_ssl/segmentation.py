"""FH segmentation (Felzenszwalb-Huttenlocher, scikit-image) importable without TensorFlow or JAX.

`jax_ssl.data._masks` computes mask stores on several spawned processes; each imports only
this module (numpy, scikit-image, Pillow), not the `jax_ssl.data` package and its TensorFlow,
so a worker starts in about a second.
"""

from __future__ import annotations

import io

import numpy as np


def fh_segment(image: np.ndarray, *, scale: float, sigma: float, min_size: int) -> np.ndarray:
  """FH segmentation of one uint8 ``[H, W, 3]`` image: uint16 ``[H, W]`` ids 0..K-1 (scikit-image)."""
  from skimage.segmentation import felzenszwalb  # pylint: disable=g-import-not-at-top

  seg = felzenszwalb(np.asarray(image), scale=scale, sigma=sigma, min_size=int(min_size))
  return seg.astype(np.uint16)


def decode_rgb(blob: bytes) -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(io.BytesIO(blob)) as im:
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def encode_png16(mask: np.ndarray) -> bytes:
  """A ``[H, W]`` id map as a 16-bit grayscale PNG (what the pipeline decodes for varying sizes)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  buf = io.BytesIO()
  Image.fromarray(np.ascontiguousarray(mask.astype(np.uint16))).save(buf, format="PNG")
  return buf.getvalue()


def segment_items(items, encoded: bool, params: dict, max_ids: int):
  """One shard's work (run in a worker process): masks, or (position, message) of the first bad image."""
  out = []
  for pos, item in enumerate(items):
    try:
      image = decode_rgb(item) if encoded else item
    except Exception as e:  # pylint: disable=broad-except
      return None, (pos, f"not a readable image ({type(e).__name__}: {e})")
    seg = fh_segment(image, **params)
    if int(seg.max()) >= max_ids:
      return None, (pos, f"{int(seg.max()) + 1} FH segments, more than max_ids={max_ids}; raise the FH "
                         f"scale / min_size (now {params['scale']} / {params['min_size']}) or max_ids")
    out.append(encode_png16(seg) if encoded else seg)
  return (out if encoded else np.stack(out)), None
