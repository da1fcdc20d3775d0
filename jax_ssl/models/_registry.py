"""Backbones by name, so that a config names its trunk and the code below it stays config-free.

Every registered backbone has the `ResNet` call interface: `module(x, *, train, return_map=False,
return_blocks=False)` with images [N, H, W, C] -> pooled features [N, module.num_features] float32.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from jax_ssl.models._convnet import ConvNet
from jax_ssl.models._dcgan import DCGANEncoder
from jax_ssl.models._regnet import RegNet, regnet
from jax_ssl.models._resnet import ResNet
from jax_ssl.models._vit import ViT, vit_from_variant


def _dtype(dtype):
  # Configs may spell dtypes as strings ("bfloat16").
  return jnp.dtype(dtype)


def _resnet(*, depth: int = 18, width: int = 64, stem: str = "cifar", bn_axis_name: Any = None,
            dtype: Any = jnp.float32) -> ResNet:
  return ResNet(depth=depth, width=width, stem=stem, bn_axis_name=bn_axis_name, dtype=_dtype(dtype))


def _vit(*, variant: str | None = None, width: int | None = None, depth: int | None = None,
         num_heads: int | None = None, mlp_dim: int | None = None, patch_size: int | None = None,
         pool: str = "cls", posemb: str = "learn", dropout: float = 0.0, dtype: Any = jnp.float32) -> ViT:
  """`variant` ("S/16") sets the size; explicit sizes override it (unset ones keep `ViT`'s defaults)."""
  sizes = dict(width=width, depth=depth, num_heads=num_heads, mlp_dim=mlp_dim, patch_size=patch_size)
  kw = dict({k: v for k, v in sizes.items() if v is not None},
            pool=pool, posemb=posemb, dropout=dropout, dtype=_dtype(dtype))
  return vit_from_variant(variant, **kw) if variant is not None else ViT(**kw)


def _convnet(*, widths=(8, 8), bn_axis_name: Any = None, dtype: Any = jnp.float32) -> ConvNet:
  return ConvNet(widths=tuple(int(w) for w in widths), bn_axis_name=bn_axis_name, dtype=_dtype(dtype))


def _dcgan(*, widths=(64, 128, 256), first_norm: bool = False, pool_grid: int = 4, bn_axis_name: Any = None,
           dtype: Any = jnp.float32) -> DCGANEncoder:
  return DCGANEncoder(widths=tuple(int(w) for w in widths), first_norm=first_norm, pool_grid=pool_grid,
                      bn_axis_name=bn_axis_name, dtype=_dtype(dtype))


def _regnet(*, variant: str | None = None, widths=None, depths=None, group_widths=None, se_ratio: float = 0.25,
            stem: str = "imagenet", bn_axis_name: Any = None, bn_group_size: int | None = None,
            dtype: Any = jnp.float32) -> RegNet:
  """`variant` ("Y-400MF" ... "Y-256GF"), or explicit per-stage widths / depths / group_widths."""
  kw = dict(se_ratio=se_ratio, stem=stem, bn_axis_name=bn_axis_name, bn_group_size=bn_group_size, dtype=_dtype(dtype))
  if variant is not None:
    if widths is not None or depths is not None or group_widths is not None:
      raise ValueError("regnet: give either a variant or widths / depths / group_widths, not both")
    return regnet(variant, **kw)
  if widths is None or depths is None or group_widths is None:
    raise ValueError("regnet: give a variant (e.g. 'Y-400MF') or all of widths, depths and group_widths")
  return RegNet(widths=tuple(int(w) for w in widths), depths=tuple(int(d) for d in depths),
                group_widths=tuple(int(g) for g in group_widths), **kw)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "resnet": _resnet,
    "vit": _vit,
    "convnet": _convnet,
    "dcgan": _dcgan,
    "regnet": _regnet,
}


def build_backbone(name: str, **kwargs) -> nn.Module:
  """The backbone registered as `name` ("resnet", "vit", "convnet", "dcgan" or "regnet"), built from keyword arguments.

  resnet: depth, width, stem, bn_axis_name, dtype (`ResNet`). vit: variant (e.g. "S/16") and/or
  width, depth, num_heads, mlp_dim, patch_size; pool, posemb, dropout, dtype (`ViT`). convnet: widths,
  bn_axis_name, dtype (`ConvNet`). dcgan: widths, first_norm, pool_grid, bn_axis_name, dtype
  (`DCGANEncoder`: the DCGAN discriminator's trunk). regnet: variant ("Y-400MF"...) or widths,
  depths, group_widths; se_ratio, stem, bn_axis_name, bn_group_size, dtype (`RegNet`). `dtype` may be a string.

  Raises:
    ValueError: for an unknown name (the message lists the registered ones) or a keyword the builder
      does not take (the message names it and the accepted ones).

  >>> build_backbone("vit", variant="S/16").width
  384
  >>> build_backbone("convnet", widths=[4, 4]).num_features
  4
  """
  if name not in BACKBONES:
    raise ValueError(f"unknown backbone {name!r}; available: {', '.join(sorted(BACKBONES))}")
  builder = BACKBONES[name]
  accepted = list(inspect.signature(builder).parameters)
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(f"backbone {name!r} got unknown argument(s) {', '.join(map(repr, unknown))}; "
                     f"accepted: {', '.join(accepted)}")
  return builder(**kwargs)
