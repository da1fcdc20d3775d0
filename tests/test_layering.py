"""The package layering of docs/design.md: imports go downward only, through public names."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lower number = lower layer. train and evaluate are side by side: neither imports the other.
LAYERS = {"losses": 0, "cluster": 0, "models": 1, "data": 2, "parallel": 3, "methods": 4, "train": 5, "evaluate": 5}


def _python_files(top):
  for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
    for f in files:
      if f.endswith(".py"):
        yield os.path.join(dirpath, f)


def _imports(path):
  """(module, line) of every `jax_ssl...` import of a file, relative imports resolved."""
  tree = ast.parse(open(path).read(), path)
  rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        yield a.name, node.lineno
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = rel[:-node.level] if rel[-1] != "__init__" or node.level > 1 else rel[:-1]
        mod = ".".join(base + ([node.module] if node.module else []))
      else:
        mod = node.module or ""
      yield mod, node.lineno
      for a in node.names:  # `from jax_ssl.data import _masks` imports a private module too
        yield f"{mod}.{a.name}", node.lineno


def _violations():
  out = []
  for top in ("jax_ssl", "experiments"):
    for path in _python_files(top):
      rel = os.path.relpath(path, ROOT)
      parts = rel[:-3].split(os.sep)
      own = parts[1] if top == "jax_ssl" and len(parts) > 2 else None  # the file's package
      for mod, line in _imports(path):
        names = mod.split(".")
        if names[0] != "jax_ssl" or len(names) < 2:
          continue
        pkg = names[1]
        if pkg != own and any(n.startswith("_") and n != "__init__" for n in names[1:]):
          out.append(f"{rel}:{line} imports private {mod}")
        if own in LAYERS and pkg in LAYERS and pkg != own and LAYERS[pkg] >= LAYERS[own]:
          out.append(f"{rel}:{line}: {own} (layer {LAYERS[own]}) imports {pkg} (layer {LAYERS[pkg]})")
  return out


def test_no_private_cross_package_imports_and_no_upward_imports():
  assert _violations() == []


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
  """The scan is not vacuous: a planted private import and an upward import are reported."""
  bad = os.path.join(ROOT, "jax_ssl", "losses", "_layering_probe_tmp.py")
  with open(bad, "w") as f:
    f.write("from jax_ssl.data._sources import ArraySource\nfrom jax_ssl import train\n")
  try:
    found = _violations()
  finally:
    os.remove(bad)
  assert any("imports private jax_ssl.data._sources" in v for v in found), found
  assert any("losses (layer 0) imports train" in v for v in found), found


@pytest.mark.parametrize("module", ["jax_ssl.data.ops", "jax_ssl.parallel", "jax_ssl.methods", "jax_ssl.train",
                                    "jax_ssl.evaluate", "jax_ssl.models"])
def test_each_package_imports_on_its_own(module):
  """No import cycles: each package imports first in a fresh interpreter."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  r = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                     env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
