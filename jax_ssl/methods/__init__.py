"""Self-supervised methods: each builds its model, names its views and wires a loss."""

from jax_ssl.methods._base import Method
from jax_ssl.methods.simclr import SimCLR
from jax_ssl.methods.rotnet import RotNet

# name -> class, for entry points that pick a method from a config string.
REGISTRY = {
    SimCLR.name: SimCLR,
    RotNet.name: RotNet,
}

__all__ = ["Method", "SimCLR", "RotNet", "REGISTRY"]
