"""Test setup: 8 simulated CPU devices, set before jax is imported anywhere, and one persistent
XLA compilation cache for the whole session.

The cache: many tests compile the same programs (a reference run and its resumed copy, the
same tiny model in a subprocess and in the test, each method's step in several tests); with
a cache shared by the xdist workers and the subprocesses they start, each program is compiled
once per session (measured: -34% CPU time on tests/train/test_faults.py from a cold cache).
Executables are the same compiled code either way, so bitwise comparisons are unaffected.
The folder is made fresh by the first process (pytest's controller) and inherited through the
environment; set JAX_COMPILATION_CACHE_DIR yourself to keep one across sessions.
"""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="jax_ssl_test_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)  # the controller removes it at the end
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # noqa: E402  (after XLA_FLAGS on purpose)

assert jax.device_count() == 8, "conftest must run before anything imports jax"
