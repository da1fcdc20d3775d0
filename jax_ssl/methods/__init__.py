"""Self-supervised methods: each builds its model, names its views and wires a loss."""

from jax_ssl.methods._base import Method
from jax_ssl.methods.simclr import SimCLR
from jax_ssl.methods.swav import SwAV

# name -> class, for entry points that pick a method from a config string.
REGISTRY = {
    SimCLR.name: SimCLR,
    SwAV.name: SwAV,
}

__all__ = ["Method", "SimCLR", "SwAV", "REGISTRY"]
