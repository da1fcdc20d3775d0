"""Every pretext config loads, every variant's method kwargs fit the method, geometry is valid."""

import importlib.util
import inspect
import os

import pytest

from jax_ssl import methods
from jax_ssl.data import ops

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "configs")
VARIANTS = {
    "rotnet_cifar10": ("quick", "full"), "rotnet_imagenet": ("full",),
    "context_hymenoptera": ("quick", "full", "cifar"), "context_imagenet": ("full",),
    "jigsaw_hymenoptera": ("quick", "full"), "jigsaw_imagenet": ("full",),
}


def _load(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(CONFIGS, name + ".py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("name,variant", [(n, v) for n, vs in VARIANTS.items() for v in vs])
def test_config_variant(name, variant):
  config = _load(name).get_config(variant)
  cls = methods.REGISTRY[config.method]
  kwargs = config.method_kwargs.to_dict()
  inspect.signature(cls.__init__).bind(None, backbone=None, mean=config.data.mean, std=config.data.std, **kwargs)
  assert config.train.batch_size % 8 == 0 or config.train.batch_size < 8
  if config.method == "context":
    side = ops.context_min_side(patch=kwargs["patch"], gap=kwargs["gap"], jitter=kwargs["jitter"])
    assert kwargs["gap"] >= 2 * kwargs["jitter"]
    if kwargs["area_range"] is None:  # small images: the pair must fit the 32 px image
      assert side <= 32
  if config.method == "jigsaw":
    assert kwargs["tile"] <= kwargs["crop"] // kwargs["grid"] and kwargs["crop"] <= kwargs["resize"]
  with pytest.raises(ValueError, match="unknown variant"):
    _load(name).get_config("nope")
