"""Flax backbones and heads."""

from jax_ssl.models._convnet import ConvNet
from jax_ssl.models._dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator, max_pool_to_grid
from jax_ssl.models._export import BACKBONE_FORMAT, load_backbone, save_backbone
from jax_ssl.models._heads import MLP
from jax_ssl.models._norm import GroupedBatchNorm
from jax_ssl.models._registry import BACKBONES, build_backbone
from jax_ssl.models._regnet import REGNETY, RegNet, regnet, regnet_stages
from jax_ssl.models._resnet import ResNet, STAGE_SIZES, resnet18, resnet34, resnet50
from jax_ssl.models._torchvision import torchvision_resnet_state_dict
from jax_ssl.models._vit import (VIT_VARIANTS, Encoder, ViT, interpolate_posemb, sincos_2d_posemb, vit_b, vit_from_variant,
                                 vit_l, vit_s, vit_ti)

__all__ = [
    "BACKBONES", "BACKBONE_FORMAT", "ConvNet", "DCGANDiscriminator", "DCGANEncoder", "DCGANGenerator", "Encoder", "GroupedBatchNorm", "MLP", "REGNETY", "RegNet", "ResNet", "STAGE_SIZES", "VIT_VARIANTS", "ViT", "build_backbone",
    "interpolate_posemb", "load_backbone", "max_pool_to_grid", "regnet", "regnet_stages", "resnet18", "resnet34", "resnet50", "save_backbone", "sincos_2d_posemb", "torchvision_resnet_state_dict",
    "vit_b", "vit_from_variant",
    "vit_l", "vit_s", "vit_ti",
]
