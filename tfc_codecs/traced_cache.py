"""Traced compress/decompress functions of a model, cached on disk.

Rebuilding a codec (Keras layers, a training pass to create the weights) and
tracing its `tf.function`s takes seconds every time a process starts. The
first use of a function of a model saves its traced graph (the FunctionDefs of
the concrete function and of the loops inside it) and the values it captures
(weights, tables) to the cache: `TFC_CODECS_CACHE`, else
`$XDG_CACHE_HOME/tfc_codecs`, else `~/.cache/tfc_codecs`
(`TFC_CODECS_CACHE=off` disables it). Later processes register those
FunctionDefs with the eager runtime and call them directly, as `tf.function`
does: no Python graph is rebuilt (a SavedModel load rebuilds one, 0.5 s of CPU
here, and its first call took 0.35 s more).

An entry is keyed by the model's fingerprint (its weights, tables and config),
its entropy coder (`ops`: the traced graphs differ) and by the version of the code that traced it (the package's sources and the
TensorFlow / tensorflow-compression builds), so it runs exactly the graph the
model would trace: same ops, same weights, same bytes. Loading needs only
tensorflow-compression's op library, not its Python package (which imports
tensorflow-probability).
"""

import functools
import glob
import hashlib
import importlib.util
import itertools
import json
import os
import shutil
import tempfile
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import function_pb2
from tensorflow.python.eager import context

CACHE_ENV = "TFC_CODECS_CACHE"
SPEC_FILE = "codec.json"
LIBRARY_FILE = "functions.pb"  # FunctionDefLibrary: the function and its loops.
CAPTURES_FILE = "captures.npz"  # Values of the captured inputs, in order.
CALL_FILE = "call.json"  # Function name and kind of each capture.
# What ImageCodec needs of a codec without building it.
CODEC_ATTRIBUTES = ("codec_name", "num_payloads", "progressive", "num_qualities",
                    "default_quality")
_load_count = itertools.count()


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


def entry_dir(fingerprint: str, ops: str) -> Optional[str]:
  """The cache entry of a model with entropy coder `ops`, or None if caching is off."""
  root = cache_dir()
  return root and os.path.join(root, f"{fingerprint}-{ops}-{code_version()}")


def read_spec(entry: str) -> Optional[Dict[str, Any]]:
  """The codec attributes stored in an entry, or None if it has none."""
  try:
    with open(os.path.join(entry, SPEC_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def load_function(entry: str, name: str) -> Optional[Callable]:
  """The cached function `name` of an entry (called with the arguments of the
  model's function, returning its one tensor), or None if it is not cached."""
  path = os.path.join(entry, name)
  try:
    with open(os.path.join(path, CALL_FILE)) as f:
      call = json.load(f)
    with open(os.path.join(path, LIBRARY_FILE), "rb") as f:
      library = function_pb2.FunctionDefLibrary.FromString(f.read())
    with np.load(os.path.join(path, CAPTURES_FILE)) as npz:
      values = [npz[f"arr_{i}"] for i in range(len(call["captures"]))]
  except (OSError, ValueError, KeyError, DecodeError):  # Absent or damaged.
    return None
  tf.load_op_library(_tfc_op_library())
  ctx = context.context()
  renamed = _rename(library, f"_tfcc{os.getpid()}_{next(_load_count)}")
  for function in library.function:
    ctx.add_function_def(function)
  captured = [tf.Variable(value) if kind == "variable" else tf.constant(value)
              for value, kind in zip(values, call["captures"])]
  handles = [c.handle if kind == "variable" else c
             for c, kind in zip(captured, call["captures"])]
  function_name = renamed[call["function"]].encode()

  def run(*args):
    # How a tf.function's concrete function calls its graph when eager.
    return ctx.call_function(function_name, list(args) + handles, 1)[0]

  run.captured = captured  # The variables live as long as the function.
  return run


def save_function(entry: str, net, name: str) -> None:
  """Adds `net`'s function `name` (traced, with what it captures) to an entry;
  best effort: a function or cache that cannot be stored is skipped."""
  concrete = getattr(net, name).get_concrete_function()
  variables = {id(v.handle): v for v in net.variables}
  kinds, values = [], []
  for tensor in concrete.captured_inputs:
    if tensor.dtype == tf.resource:
      if id(tensor) not in variables:
        return  # A resource other than a weight: not cacheable.
      kinds.append("variable")
      values.append(variables[id(tensor)].numpy())
    else:
      kinds.append("tensor")
      values.append(tensor.numpy())
  if len(concrete.outputs) != 1:
    return
  library = function_pb2.FunctionDefLibrary()
  library.function.extend(concrete.graph.as_graph_def().library.function)
  library.function.append(concrete.function_def)
  try:
    os.makedirs(entry, exist_ok=True)
    if read_spec(entry) is None:
      _replace_file(os.path.join(entry, SPEC_FILE), json.dumps(
          {key: getattr(net, key) for key in CODEC_ATTRIBUTES if hasattr(net, key)}))
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=entry)
    try:
      with open(os.path.join(staging, LIBRARY_FILE), "wb") as f:
        f.write(library.SerializeToString())
      np.savez(os.path.join(staging, CAPTURES_FILE), *values)
      with open(os.path.join(staging, CALL_FILE), "w") as f:
        json.dump(dict(function=concrete.function_def.signature.name, captures=kinds), f)
      target = os.path.join(entry, name)
      shutil.rmtree(target, ignore_errors=True)  # Damaged, as it did not load.
      os.replace(staging, target)
    except OSError:  # E.g. another process saved it in between.
      pass
    finally:
      shutil.rmtree(staging, ignore_errors=True)
  except OSError:
    pass


def _rename(library: function_pb2.FunctionDefLibrary, suffix: str) -> Dict[str, str]:
  """Gives every function of `library` a name unique to this load (traced
  names repeat across processes and models), in place; returns old -> new."""
  names = {f.signature.name: f.signature.name + suffix for f in library.function}
  for function in library.function:
    function.signature.name = names[function.signature.name]
    for node in function.node_def:
      if node.op in names:
        node.op = names[node.op]
      for attr in node.attr.values():
        if attr.func.name in names:
          attr.func.name = names[attr.func.name]
        for func in attr.list.func:
          if func.name in names:
            func.name = names[func.name]
  return names


def _replace_file(path: str, text: str) -> None:
  handle, staging = tempfile.mkstemp(dir=os.path.dirname(path))
  with os.fdopen(handle, "w") as f:
    f.write(text)
  os.replace(staging, path)
