"""The core install's check (`make test-core`): in an environment with only jax / flax / optax /
numpy, `jax_ssl.losses`, `jax_ssl.models` and `jax_ssl.cluster` import without TensorFlow and their doctests pass,
and an exported backbone loads and runs. Exits non-zero on any failure."""

import doctest
import importlib
import os
import pkgutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jax_ssl.cluster  # noqa: E402
import jax_ssl.losses  # noqa: E402
import jax_ssl.models  # noqa: E402

OPTIONAL = ("tensorflow", "tensorflow_datasets", "skimage", "matplotlib", "ml_collections", "tqdm", "sklearn")


def main() -> int:
  loaded = sorted(m for m in OPTIONAL if m in sys.modules)
  if loaded:
    print(f"error: importing jax_ssl.losses / models / cluster loaded optional packages: {loaded}")
    return 1
  mods = [importlib.import_module(f"{pkg.__name__}.{m.name}") for pkg in (jax_ssl.losses, jax_ssl.models, jax_ssl.cluster)
          for m in pkgutil.iter_modules(pkg.__path__)]
  results = [doctest.testmod(m, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE) for m in mods]
  attempted, failed = sum(r.attempted for r in results), sum(r.failed for r in results)
  print(f"core doctests: {attempted} examples in {len(mods)} modules, {failed} failed")
  if failed or not attempted:
    return 1
  # An exported backbone round trip, with nothing but the core.
  module = jax_ssl.models.build_backbone("resnet", depth=18, width=8, stem="imagenet")
  x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
  variables = module.init(jax.random.key(0), jnp.asarray(x), train=False)
  with tempfile.TemporaryDirectory() as d:
    jax_ssl.models.save_backbone(os.path.join(d, "b"), variables, {
        "architecture": {"name": "resnet", "depth": 18, "width": 8, "stem": "imagenet"}, "input_shape": [32, 32, 3]})
    module2, variables2, _ = jax_ssl.models.load_backbone(os.path.join(d, "b"))
  same = np.array_equal(np.asarray(module.apply(variables, x, train=False)), np.asarray(module2.apply(variables2, x, train=False)))
  print(f"exported backbone reloads with identical features: {same}")
  return 0 if same else 1


if __name__ == "__main__":
  sys.exit(main())
