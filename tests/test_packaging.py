"""Packaging: the core install stays free of the data stack; the lock file covers every extra."""

import os
import re
import subprocess
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONAL = ("tensorflow", "tensorflow_datasets", "skimage", "matplotlib", "ml_collections", "orbax", "tqdm")


def test_importing_the_losses_models_and_cluster_never_imports_tensorflow():
  code = ("import sys, jax_ssl, jax_ssl.losses, jax_ssl.models, jax_ssl.cluster; "
          f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == "[]"


def test_lazy_load_attribute_and_unknown_attribute():
  import jax_ssl  # pylint: disable=g-import-not-at-top
  from jax_ssl import pretrained  # pylint: disable=g-import-not-at-top

  assert jax_ssl.load is pretrained.load
  try:
    jax_ssl.no_such_thing  # pylint: disable=pointless-statement
  except AttributeError as e:
    assert "no_such_thing" in str(e)
  else:
    raise AssertionError("jax_ssl.no_such_thing did not raise")


def _name(req: str) -> str:
  return re.split(r"[<>=!\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_core_dependencies_and_every_extra_are_pinned_in_requirements():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  assert sorted(project["dependencies"]) == ["flax", "jax", "numpy", "optax"]
  with open(os.path.join(ROOT, "requirements.txt")) as f:
    pinned = {_name(line) for line in f if line.strip() and not line.startswith("#")}
  wanted = {_name(r) for r in project["dependencies"]}
  for extra, reqs in project["optional-dependencies"].items():
    wanted |= {_name(r) for r in reqs if not r.startswith("jax_ssl[")}
  assert wanted - pinned == set(), f"in pyproject.toml but not pinned in requirements.txt: {wanted - pinned}"
