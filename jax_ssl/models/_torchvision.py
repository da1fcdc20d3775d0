"""The `jax_ssl.models.ResNet` variables in torchvision's ResNet `state_dict` layout.

For detection / segmentation code built on torchvision (Detectron2, mmdet, torchvision's own
detection models): names as `torchvision.models.resnet{18,..,152}().state_dict()` (conv1, bn1,
layer{1-4}.{i}.conv{k} / bn{k} / downsample.{0,1}), convolution kernels OIHW (Flax: HWIO),
BatchNorm as weight / bias / running_mean / running_var / num_batches_tracked. There is no
`fc.*`: a backbone has no classifier, so load with `strict=False` (or drop `fc`).

The layers match torchvision exactly (v1.5 bottlenecks with the stride on the 3x3, padding 1 on
every 3x3 convolution and on the stem's max-pool, BatchNorm eps 1e-5), so the same weights give
the same features in both. A CIFAR-stem ResNet (3x3 stride-1 stem, no max-pool) converts to
`conv1.weight` [C, 3, 3, 3]: load it into a torchvision ResNet whose `conv1` is
`Conv2d(3, C, 3, 1, 1, bias=False)` and `maxpool` is `Identity()` (solo-learn's CIFAR ResNet).
"""

from __future__ import annotations

import re

import numpy as np


def _conv(kernel) -> np.ndarray:
  return np.ascontiguousarray(np.transpose(np.asarray(kernel, np.float32), (3, 2, 0, 1)))  # HWIO -> OIHW


def torchvision_resnet_state_dict(variables: dict) -> dict[str, np.ndarray]:
  """{torchvision name: numpy array} of a `ResNet`'s {"params", "batch_stats"} variables.

  >>> import jax, jax.numpy as jnp
  >>> from jax_ssl.models import ResNet
  >>> v = ResNet(depth=18, stem="imagenet").init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False)
  >>> sd = torchvision_resnet_state_dict(v)
  >>> sd["conv1.weight"].shape, sd["layer2.0.downsample.0.weight"].shape, len(sd)
  ((64, 3, 7, 7), (128, 64, 1, 1), 120)
  """
  params, stats = variables["params"], variables.get("batch_stats")
  if "stem_conv" not in params or stats is None:
    raise ValueError("torchvision_resnet_state_dict takes the variables of a jax_ssl ResNet "
                     "({'params', 'batch_stats'} with 'stem_conv', 'stage1_block1', ...)")
  out = {}

  def bn(name, p, s):
    out[f"{name}.weight"] = np.asarray(p["scale"], np.float32)
    out[f"{name}.bias"] = np.asarray(p["bias"], np.float32)
    out[f"{name}.running_mean"] = np.asarray(s["mean"], np.float32)
    out[f"{name}.running_var"] = np.asarray(s["var"], np.float32)
    out[f"{name}.num_batches_tracked"] = np.asarray(0, np.int64)

  out["conv1.weight"] = _conv(params["stem_conv"]["kernel"])
  bn("bn1", params["stem_bn"], stats["stem_bn"])
  blocks = sorted((tuple(map(int, m.groups())), k) for k in params
                  if (m := re.fullmatch(r"stage(\d+)_block(\d+)", k)))
  for (stage, index), key in blocks:
    p, s = params[key], stats[key]
    prefix = f"layer{stage}.{index - 1}"
    k = 0
    while f"Conv_{k}" in p:
      out[f"{prefix}.conv{k + 1}.weight"] = _conv(p[f"Conv_{k}"]["kernel"])
      bn(f"{prefix}.bn{k + 1}", p[f"BatchNorm_{k}"], s[f"BatchNorm_{k}"])
      k += 1
    if "proj_conv" in p:
      out[f"{prefix}.downsample.0.weight"] = _conv(p["proj_conv"]["kernel"])
      bn(f"{prefix}.downsample.1", p["proj_bn"], s["proj_bn"])
  return out
