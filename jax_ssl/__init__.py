"""jax_ssl: self-supervised visual representation learning in JAX/Flax.

`jax_ssl.load(workdir)` restores a pretrained run (`jax_ssl.pretrained`); it is imported on
first use, so `import jax_ssl.losses` stays free of the data stack (TensorFlow).
"""

__version__ = "0.1.0"

_LAZY = {"load": "jax_ssl.pretrained", "Pretrained": "jax_ssl.pretrained"}


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top

    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'jax_ssl' has no attribute {name!r}")
