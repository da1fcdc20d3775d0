"""Flax backbones and heads."""

from jax_ssl.models._heads import MLP
from jax_ssl.models._resnet import ResNet, STAGE_SIZES, resnet18, resnet34, resnet50

__all__ = ["MLP", "ResNet", "STAGE_SIZES", "resnet18", "resnet34", "resnet50"]
