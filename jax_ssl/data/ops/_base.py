"""The basic augmentation ops (see the package docstring for the conventions)."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import tensorflow as tf

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale


def to_float(image) -> tf.Tensor:
  """uint8 ``[H, W, C]`` in 0..255 -> float32 in ``[0, 1]``; float input is cast unchanged."""
  image = tf.convert_to_tensor(image)
  if image.dtype == tf.uint8:
    return tf.cast(image, tf.float32) / 255.0
  return tf.cast(image, tf.float32)


def split_seed(seed, num: int) -> list:
  """``num`` independent child seeds of a ``[2]`` seed."""
  return tf.unstack(tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num))


def _uniform(seed, shape=(), minval=0.0, maxval=1.0):
  return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval, dtype=tf.float32)


def _bernoulli(seed, p: float):
  return _uniform(seed) < p


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def sample_crop_box(seed, height, width, *, scale: Tuple[float, float] = (0.08, 1.0),
                    ratio: Tuple[float, float] = (3 / 4, 4 / 3), attempts: int = 10) -> tf.Tensor:
  """A random crop box ``[top, left, h, w]`` (int32) of an ``height x width`` image.

  Area fraction uniform in ``scale``, aspect ratio ``w / h`` log-uniform in ``ratio``;
  the first of ``attempts`` draws that fits the image is used, else the central crop of the
  whole image clamped to ``ratio`` (torchvision's ``RandomResizedCrop.get_params``).
  The box always lies inside the image with ``h, w >= 1``.
  """
  s_area, s_ratio, s_pos = split_seed(seed, 3)
  hf = tf.cast(height, tf.float32)
  wf = tf.cast(width, tf.float32)
  area = hf * wf * _uniform(s_area, [attempts], scale[0], scale[1])
  log_r = _uniform(s_ratio, [attempts], math.log(ratio[0]), math.log(ratio[1]))
  r = tf.exp(log_r)
  ws = tf.cast(tf.round(tf.sqrt(area * r)), tf.int32)
  hs = tf.cast(tf.round(tf.sqrt(area / r)), tf.int32)
  ok = (ws > 0) & (hs > 0) & (ws <= width) & (hs <= height)
  first = tf.argmax(tf.cast(ok, tf.int32), output_type=tf.int32)
  any_ok = tf.reduce_any(ok)

  # Fallback: the whole image, clamped to the allowed aspect ratio, centred.
  in_ratio = wf / hf
  fw = tf.where(in_ratio < ratio[0], wf, tf.where(in_ratio > ratio[1], tf.round(hf * ratio[1]), wf))
  fh = tf.where(in_ratio < ratio[0], tf.round(wf / ratio[0]), hf)
  fh = tf.clip_by_value(tf.cast(fh, tf.int32), 1, height)
  fw = tf.clip_by_value(tf.cast(fw, tf.int32), 1, width)

  h = tf.where(any_ok, hs[first], fh)
  w = tf.where(any_ok, ws[first], fw)
  u = _uniform(s_pos, [2])
  top_rand = tf.cast(tf.floor(u[0] * tf.cast(height - h + 1, tf.float32)), tf.int32)
  left_rand = tf.cast(tf.floor(u[1] * tf.cast(width - w + 1, tf.float32)), tf.int32)
  top = tf.where(any_ok, tf.minimum(top_rand, height - h), (height - h) // 2)
  left = tf.where(any_ok, tf.minimum(left_rand, width - w), (width - w) // 2)
  return tf.stack([top, left, h, w])


def crop_and_resize(image, box, size, *, method: str = "bilinear", antialias: bool = True) -> tf.Tensor:
  """Crops ``box = [top, left, h, w]`` out of ``image [H, W, C]`` and resizes it to ``size``.

  ``size`` is an int (square) or ``(height, width)``. ``method="nearest"`` for masks and
  label maps (keeps the dtype and the values); otherwise the result is float32 clipped to
  ``[0, 1]``.
  """
  if isinstance(size, int):
    size = (size, size)
  image = tf.convert_to_tensor(image)
  box = tf.cast(box, tf.int32)
  crop = image[box[0]:box[0] + box[2], box[1]:box[1] + box[3], :]
  if method == "nearest":
    out = tf.image.resize(crop, size, method="nearest")
    return tf.cast(out, image.dtype)
  out = tf.image.resize(tf.cast(crop, tf.float32), size, method=method, antialias=antialias)
  return tf.clip_by_value(out, 0.0, 1.0)


def random_resized_crop(image, seed, size, *, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                        method: str = "bilinear") -> tf.Tensor:
  """Inception-style random resized crop (SimCLR's ``random_crop_with_resize``)."""
  shape = tf.shape(image)
  box = sample_crop_box(seed, shape[0], shape[1], scale=scale, ratio=ratio)
  return crop_and_resize(image, box, size, method=method)


def sample_flip(seed, p: float = 0.5) -> tf.Tensor:
  """A boolean: whether to flip (probability ``p``)."""
  return _bernoulli(seed, p)


def flip_left_right(image, flip) -> tf.Tensor:
  """Mirrors ``image [H, W, C]`` left-right when the boolean ``flip`` is true."""
  image = tf.convert_to_tensor(image)
  return tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)


def random_flip(image, seed, p: float = 0.5) -> tf.Tensor:
  """Horizontal flip with probability ``p``."""
  return flip_left_right(image, sample_flip(seed, p))


def rot90(image, k) -> tf.Tensor:
  """Rotates ``image [H, W, C]`` by ``k * 90`` degrees counter-clockwise (as ``np.rot90``)."""
  return tf.image.rot90(image, k)


# ---------------------------------------------------------------------------------------------
# Colour
# ---------------------------------------------------------------------------------------------


def grayscale(image) -> tf.Tensor:
  """Luma (ITU-R 601, as ``tf.image.rgb_to_grayscale``) replicated to 3 channels."""
  gray = tf.tensordot(image, tf.constant(_GRAY_WEIGHTS, image.dtype), axes=[[-1], [0]])[..., None]
  return tf.tile(gray, [1, 1, 3])


def sobel(image) -> tf.Tensor:
  """DeepCluster's fixed input filter (Caron et al. 2018, official ``models/alexnet.py``): the
  mean of the channels (a 1x1 convolution of weights 1/3), then the two 3x3 Sobel
  cross-correlations ``[[1, 0, -1], [2, 0, -2], [1, 0, -1]]`` (horizontal gradient) and its
  transpose, zero padding 1: ``[H, W, C]`` -> ``[H, W, 2]``. Applied, as the official, to the
  normalized image, so values are not in [0, 1]."""
  image = tf.convert_to_tensor(image, tf.float32)
  gray = tf.reduce_mean(image, axis=-1, keepdims=True)
  gx = tf.constant([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
  kernel = tf.stack([gx, tf.transpose(gx)], axis=-1)[:, :, None, :]  # [3, 3, 1, 2] HWIO
  return tf.nn.conv2d(gray[None], kernel, strides=1, padding=[[0, 0], [1, 1], [1, 1], [0, 0]])[0]


# sRGB (D65) -> CIE XYZ and the D65 2-degree white point: skimage.color's constants.
_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_D65_WHITE = (0.95047, 1.0, 1.08883)


def rgb_to_lab(image) -> tf.Tensor:
  """sRGB in ``[0, 1]`` ``[..., 3]`` -> CIE Lab ``[..., 3]`` (L in 0..100, a and b about -128..127).

  The conversion of ``skimage.color.rgb2lab`` (D65, 2-degree observer): the sRGB transfer
  curve undone (``c / 12.92`` up to 0.04045, else ``((c + 0.055) / 1.055) ** 2.4``), XYZ by
  skimage's matrix, divided by the white point, then ``f(t) = t ** (1/3)`` above 0.008856 else
  ``7.787 t + 16 / 116``; ``L = 116 f(y) - 16``, ``a = 500 (f(x) - f(y))``, ``b = 200 (f(y) - f(z))``.
  Colorization's input (Zhang et al. 2016) is L, its target ab.
  """
  rgb = tf.cast(image, tf.float32)
  linear = tf.where(rgb > 0.04045, tf.pow((rgb + 0.055) / 1.055, 2.4), rgb / 12.92)
  xyz = tf.tensordot(linear, tf.constant(_XYZ_FROM_RGB, tf.float32), axes=[[-1], [1]])
  xyz = xyz / tf.constant(_D65_WHITE, tf.float32)
  f = tf.where(xyz > 0.008856, tf.pow(tf.maximum(xyz, 0.008856), 1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
  fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
  return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lightness_to_gray(lightness) -> tf.Tensor:
  """CIE L (0..100) ``[..., 1]`` -> the achromatic sRGB colour of that lightness ``[..., 3]`` in
  ``[0, 1]`` (a = b = 0): the inverse of `rgb_to_lab` for greys (``Y = f^-1((L + 16) / 116)``,
  linear RGB = Y for D65 white, then the sRGB transfer curve). The grey image a colour-blind
  trunk sees when Colorization shares it with RGB tasks."""
  fy = (tf.cast(lightness, tf.float32) + 16.0) / 116.0
  y = tf.where(fy > 0.20689656, fy ** 3, (fy - 16.0 / 116.0) / 7.787)  # 0.2069 = 0.008856 ** (1/3)
  y = tf.clip_by_value(y, 0.0, 1.0)
  srgb = tf.where(y > 0.0031308, 1.055 * tf.pow(tf.maximum(y, 0.0031308), 1.0 / 2.4) - 0.055, 12.92 * y)
  return tf.concat([srgb] * 3, axis=-1)


def random_grayscale(image, seed, p: float = 0.2) -> tf.Tensor:
  """Converts to grayscale (3 channels kept) with probability ``p``."""
  return tf.cond(_bernoulli(seed, p), lambda: grayscale(image), lambda: image)


def _adjust_brightness(image, factor):
  return tf.clip_by_value(image * factor, 0.0, 1.0)


def _adjust_contrast(image, factor):
  return tf.clip_by_value(tf.image.adjust_contrast(image, factor), 0.0, 1.0)


def _adjust_saturation(image, factor):
  return tf.clip_by_value(tf.image.adjust_saturation(image, factor), 0.0, 1.0)


def _adjust_hue(image, delta):
  return tf.clip_by_value(tf.image.adjust_hue(image, delta), 0.0, 1.0)


def color_jitter(image, seed, *, strength: float = 1.0, brightness=None, contrast=None,
                 saturation=None, hue=None, random_order: bool = True) -> tf.Tensor:
  """SimCLR v2 colour jitter: four adjustments in a random order, each clipped to ``[0, 1]``.

  Defaults from ``strength s``: brightness ``0.8 s``, contrast ``0.8 s``, saturation
  ``0.8 s``, hue ``0.2 s``. Brightness multiplies by ``U[max(0, 1 - b), 1 + b]``; contrast and
  saturation scale by ``U[max(0, 1 - c), 1 + c]``; hue shifts by ``U[-h, h]`` turns.
  """
  b = 0.8 * strength if brightness is None else brightness
  c = 0.8 * strength if contrast is None else contrast
  s = 0.8 * strength if saturation is None else saturation
  h = 0.2 * strength if hue is None else hue
  s_perm, s_b, s_c, s_s, s_h = split_seed(seed, 5)
  fb = _uniform(s_b, (), max(0.0, 1 - b), 1 + b)
  fc = _uniform(s_c, (), max(0.0, 1 - c), 1 + c)
  fs = _uniform(s_s, (), max(0.0, 1 - s), 1 + s)
  fh = _uniform(s_h, (), -h, h)
  steps = [lambda x: _adjust_brightness(x, fb), lambda x: _adjust_contrast(x, fc),
           lambda x: _adjust_saturation(x, fs), lambda x: _adjust_hue(x, fh)]
  active = [i for i, v in enumerate((b, c, s, h)) if v > 0]
  if not active:
    return image
  if not random_order:
    for i in active:
      image = steps[i](image)
    return image
  order = tf.argsort(_uniform(s_perm, [len(active)]))
  branches = [steps[i] for i in active]
  for j in range(len(active)):
    image = tf.switch_case(order[j], [lambda f=f: f(image) for f in branches])
  return tf.ensure_shape(image, [None, None, 3])


def random_color_jitter(image, seed, p: float = 0.8, **kwargs) -> tf.Tensor:
  """:func:`color_jitter` with probability ``p``."""
  s_apply, s_jit = split_seed(seed, 2)
  return tf.cond(_bernoulli(s_apply, p), lambda: color_jitter(image, s_jit, **kwargs), lambda: image)


def color_drop(image, seed, *, strength: float = 1.0, jitter_p: float = 0.8, gray_p: float = 0.2):
  """SimCLR's colour distortion: jitter with probability ``jitter_p``, then grayscale ``gray_p``."""
  s_jit, s_gray = split_seed(seed, 2)
  image = random_color_jitter(image, s_jit, p=jitter_p, strength=strength)
  return random_grayscale(image, s_gray, p=gray_p)


def gaussian_blur(image, sigma, *, kernel_size: int) -> tf.Tensor:
  """Separable Gaussian blur of ``image [H, W, C]`` with reflect padding (odd kernel side)."""
  radius = kernel_size // 2
  x = tf.range(-radius, radius + 1, dtype=tf.float32)
  k = tf.exp(-tf.square(x) / (2.0 * tf.square(tf.cast(sigma, tf.float32))))
  k = k / tf.reduce_sum(k)
  channels = 3
  kh = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, channels, 1])
  kw = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, channels, 1])
  x4 = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
  x4 = tf.nn.depthwise_conv2d(x4, kh, strides=[1, 1, 1, 1], padding="VALID")
  x4 = tf.nn.depthwise_conv2d(x4, kw, strides=[1, 1, 1, 1], padding="VALID")
  return tf.clip_by_value(x4[0], 0.0, 1.0)


def random_gaussian_blur(image, seed, p: float = 0.5, *, sigma: Tuple[float, float] = (0.1, 2.0),
                         kernel_fraction: float = 0.1) -> tf.Tensor:
  """SimCLR's blur: with probability ``p``, sigma ``U[sigma]``, kernel side 10% of the height."""
  if p <= 0:
    return image
  s_apply, s_sigma = split_seed(seed, 2)
  size = image.shape[0]
  if size is None:
    raise ValueError("random_gaussian_blur needs a static image height (resize first)")
  radius = max(1, int(size * kernel_fraction) // 2)
  sig = _uniform(s_sigma, (), sigma[0], sigma[1])
  return tf.cond(_bernoulli(s_apply, p),
                 lambda: gaussian_blur(image, sig, kernel_size=2 * radius + 1), lambda: image)


def solarize(image, threshold: float = 0.5) -> tf.Tensor:
  """``x`` below ``threshold``, ``1 - x`` from it on (BYOL)."""
  return tf.where(image < threshold, image, 1.0 - image)


def random_solarize(image, seed, p: float = 0.2, threshold: float = 0.5) -> tf.Tensor:
  """:func:`solarize` with probability ``p``."""
  if p <= 0:
    return image
  return tf.cond(_bernoulli(seed, p), lambda: solarize(image, threshold), lambda: image)


def normalize(image, mean: Sequence[float], std: Sequence[float]) -> tf.Tensor:
  """Per-channel ``(image - mean) / std``."""
  return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


# ---------------------------------------------------------------------------------------------
# Composite views
# ---------------------------------------------------------------------------------------------


def simclr_view(image, seed, *, size: int, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3),
                flip_p: float = 0.5, jitter_strength: float = 1.0, jitter_p: float = 0.8,
                gray_p: float = 0.2, blur_p: float = 0.0, solarize_p: float = 0.0) -> tf.Tensor:
  """One SimCLR view of a float image in ``[0, 1]``: ``[size, size, 3]`` float32 in ``[0, 1]``.

  Random resized crop, horizontal flip, colour jitter (``jitter_p``, strength
  ``jitter_strength``), grayscale (``gray_p``), then optional Gaussian blur (``blur_p``) and
  solarisation (``solarize_p``). SimCLR's ImageNet setting: strength 1.0, ``blur_p=0.5``;
  CIFAR-10: strength 0.5, no blur (Chen et al. 2020, appendix B.9).
  """
  s_crop, s_flip, s_color, s_blur, s_sol = split_seed(seed, 5)
  image = random_resized_crop(image, s_crop, size, scale=tuple(crop_scale), ratio=tuple(crop_ratio))
  image = random_flip(image, s_flip, flip_p)
  image = color_drop(image, s_color, strength=jitter_strength, jitter_p=jitter_p, gray_p=gray_p)
  image = random_gaussian_blur(image, s_blur, blur_p)
  image = random_solarize(image, s_sol, solarize_p)
  return tf.ensure_shape(image, [size, size, 3])
