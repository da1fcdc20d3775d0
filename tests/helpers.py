"""Small shared fixtures for the method and trainer tests (imported as `helpers`)."""

import numpy as np

from jax_ssl.data import ArraySource


def toy_source(n=64, size=16, num_classes=4, seed=0):
  """Random uint8 images whose colour depends on the class (so features can learn something)."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n, dtype=np.int32) % num_classes
  base = rng.integers(0, 256, (num_classes, 1, 1, 3))
  noise = rng.integers(-40, 40, (n, size, size, 3))
  images = np.clip(base[labels] + noise, 0, 255).astype(np.uint8)
  return ArraySource(images, labels, [f"c{i}" for i in range(num_classes)], "toy")
