"""Traced compress/decompress functions of a model, cached as SavedModels.

Rebuilding a codec (Keras layers, a training pass to create the weights) and
tracing its `tf.function`s takes seconds every time a process starts; a
SavedModel of one traced function loads in a fraction of that. The first use
of a function of a model saves it to the cache (`TFC_CODECS_CACHE`, else
`$XDG_CACHE_HOME/tfc_codecs`, else `~/.cache/tfc_codecs`; `TFC_CODECS_CACHE=off`
disables it), and later processes load it instead of the model.

An entry is keyed by the model's fingerprint (its weights, tables and config)
and by the version of the code that traced it (the package's sources and the
TensorFlow / tensorflow-compression builds), so it runs exactly the graph the
model would trace: same ops, same weights, same bytes. Loading needs only
tensorflow-compression's op library, not its Python package (which imports
tensorflow-probability).
"""

import contextlib
import functools
import glob
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Optional

import tensorflow as tf

CACHE_ENV = "TFC_CODECS_CACHE"
SPEC_FILE = "codec.json"
# What ImageCodec needs of a codec without building it.
CODEC_ATTRIBUTES = ("codec_name", "num_payloads", "progressive", "num_qualities",
                    "default_quality")


def cache_dir() -> Optional[str]:
  """The cache directory, or None if caching is off."""
  path = os.environ.get(CACHE_ENV)
  if path is None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "tfc_codecs")
  return None if path in ("", "off") else path


@functools.lru_cache(maxsize=None)
def _tfc_op_library() -> str:
  """Path of tensorflow-compression's op library, spelled as its `gen_ops`
  spells it (TensorFlow then loads it once if both load it)."""
  package = importlib.util.find_spec("tensorflow_compression").submodule_search_locations[0]
  return os.path.join(package, "python", "ops", "../../cc/libtensorflow_compression.so")


@functools.lru_cache(maxsize=None)
def code_version() -> str:
  """Hash of this package's sources and of the TensorFlow builds in use."""
  digest = hashlib.sha256(f"{tf.__version__} {tf.__git_version__}".encode())
  library = os.stat(_tfc_op_library())
  digest.update(f"{library.st_size} {library.st_mtime_ns}".encode())
  package = os.path.dirname(os.path.abspath(__file__))
  for path in sorted(glob.glob(os.path.join(package, "**", "*.py"), recursive=True)):
    digest.update(os.path.relpath(path, package).encode())
    with open(path, "rb") as f:
      digest.update(f.read())
  return digest.hexdigest()[:16]


def entry_dir(fingerprint: str) -> Optional[str]:
  """The cache entry of a model, or None if caching is off."""
  root = cache_dir()
  return root and os.path.join(root, f"{fingerprint}-{code_version()}")


def read_spec(entry: str) -> Optional[Dict[str, Any]]:
  """The codec attributes stored in an entry, or None if it has none."""
  try:
    with open(os.path.join(entry, SPEC_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def load_function(entry: str, name: str) -> Optional[Callable]:
  """The cached function `name` of an entry, or None if it is not cached."""
  path = os.path.join(entry, name)
  if not os.path.isfile(os.path.join(path, "saved_model.pb")):
    return None
  tf.load_op_library(_tfc_op_library())
  with _quiet():
    root = tf.saved_model.load(path)
  return lambda *args: root.function(*args)  # The root owns the weights.


def save_function(entry: str, net, name: str) -> None:
  """Adds `net`'s function `name` (traced, with its weights) to an entry;
  best effort: a cache that cannot be written is skipped."""
  module = tf.Module()
  module.variables_ = list(net.variables)
  module.function = getattr(net, name)
  try:
    os.makedirs(entry, exist_ok=True)
    if read_spec(entry) is None:
      _replace_file(os.path.join(entry, SPEC_FILE), json.dumps(
          {key: getattr(net, key) for key in CODEC_ATTRIBUTES if hasattr(net, key)}))
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=entry)
    try:
      with _quiet():
        tf.saved_model.save(module, staging)
      os.replace(staging, os.path.join(entry, name))
    except OSError:  # Another process saved it first.
      pass
    finally:
      shutil.rmtree(staging, ignore_errors=True)
  except OSError:
    pass


@contextlib.contextmanager
def _quiet():
  """Silences the notes TensorFlow logs while saving and loading (renamed
  inputs, custom gradients that inference never needs)."""
  previous = logging.root.manager.disable
  logging.disable(logging.WARNING)
  try:
    yield
  finally:
    logging.disable(previous)


def _replace_file(path: str, text: str) -> None:
  handle, staging = tempfile.mkstemp(dir=os.path.dirname(path))
  with os.fdopen(handle, "w") as f:
    f.write(text)
  os.replace(staging, path)
