"""The shipped models' stock-op exports: how the plain install runs them.

Beside each zoo model's `weights.npz` lies `stock_export/`, the SavedModel
that `tfc_codecs export --ops stock` writes for it (stock TensorFlow ops only,
container coder 5), without its variables: those are exactly the weights,
already in `weights.npz`. `variables.json` names, for each tensor of the
export's checkpoint, the array of `weights.npz` it equals (float16 weights
widened to float32, as the model itself loads them) or the entry of
`extras.npz` that holds it (the checkpoint's object graph), with the SHA-256
of its bytes. `saved_model_dir` writes the checkpoint back with TensorFlow's
stock `SaveV2` op into the cache (`traced_cache.cache_dir`), so the graph
runs on any TensorFlow from 2.14 on, without tensorflow-compression, and
gives the same bytes and pixels as the model built from its weights.

`store` (used by `export.write_shipped_export`, which needs the `[train]`
install) makes `stock_export/` from an export; a test checks that every
shipped model's is current.
"""

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import threading
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from tfc_codecs import model_dir, traced_cache, zoo
from tfc_codecs.errors import CodecError
from tfc_codecs.exported_codec import INFO_FILE

EXPORT_DIR = "stock_export"
MANIFEST_FILE = "variables.json"
EXTRAS_FILE = "extras.npz"
REGENERATE = "python -m tools.build_stock_exports"
_GRAPH_FILES = ("saved_model.pb", INFO_FILE)
_VARIABLES = os.path.join("variables", "variables")
_STRING = "string"  # dtype of a string scalar stored as its bytes (uint8).
_lock = threading.Lock()


def export_dir(model_path: str) -> Optional[str]:
  """The `stock_export/` of model directory `model_path`, if it has one."""
  path = os.path.join(model_path, EXPORT_DIR)
  return path if os.path.isfile(os.path.join(path, MANIFEST_FILE)) else None


def _digest(value: np.ndarray) -> str:
  return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


def _weights(model_path: str) -> Dict[str, np.ndarray]:
  """The model's arrays as it loads them: float16 widened to float32."""
  with np.load(os.path.join(model_path, model_dir.WEIGHTS_NPZ)) as arrays:
    return {name: arrays[name].astype(np.float32) if arrays[name].dtype == np.float16
            else arrays[name] for name in arrays.files}


def store(export_path: str, model_path: str) -> str:
  """Writes `model_path/stock_export/` from export version directory
  `export_path` of that model; returns its path."""
  by_value: Dict[Tuple[str, Tuple[int, ...], str], str] = {}
  for name, value in _weights(model_path).items():
    by_value.setdefault((value.dtype.str, value.shape, _digest(value)), name)
  reader = tf.train.load_checkpoint(os.path.join(export_path, _VARIABLES))
  tensors: List[Dict[str, str]] = []
  extras: Dict[str, np.ndarray] = {}
  for key in sorted(reader.get_variable_to_shape_map()):
    value = reader.get_tensor(key)
    if isinstance(value, bytes):  # A string scalar (the object graph), kept as its bytes.
      value, dtype = np.frombuffer(value, np.uint8), _STRING
    else:
      value = np.asarray(value)
      dtype = value.dtype.str
    digest = _digest(value)
    weight = by_value.get((value.dtype.str, value.shape, digest))
    if weight is None:
      extras[f"t{len(extras)}"] = value
    tensors.append(dict(key=key, dtype=dtype, sha256=digest,
                        **({"weight": weight} if weight else {"extra": f"t{len(extras) - 1}"})))
  target = os.path.join(model_path, EXPORT_DIR)
  staging = tempfile.mkdtemp(prefix=".tmp-", dir=model_path)
  try:
    os.makedirs(os.path.join(staging, os.path.dirname(INFO_FILE)))
    shutil.copyfile(os.path.join(export_path, "saved_model.pb"),
                    os.path.join(staging, "saved_model.pb"))
    with open(os.path.join(export_path, INFO_FILE)) as f:
      export_info = json.load(f)
    export_info["source"] = os.path.relpath(os.path.abspath(model_path),
                                            os.path.dirname(zoo.ZOO_DIR))
    with open(os.path.join(staging, INFO_FILE), "w") as f:
      json.dump(export_info, f, indent=2)
    np.savez_compressed(os.path.join(staging, EXTRAS_FILE), **extras)
    with open(os.path.join(staging, MANIFEST_FILE), "w") as f:
      json.dump({"tensors": tensors}, f, indent=1)
    os.chmod(staging, 0o755)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return target


def info(model_path: str) -> Dict[str, object]:
  """The export's `tfc_codecs.json` (codec, fingerprint, qualities, ops)."""
  with open(os.path.join(model_path, EXPORT_DIR, INFO_FILE)) as f:
    return json.load(f)


def materialize(model_path: str, target: str) -> None:
  """Writes the complete SavedModel of `model_path`'s stock export to
  directory `target` (new or empty; its parent exists)."""
  source = export_dir(model_path)
  if source is None:
    raise CodecError(f"{model_path} has no stock export")
  fingerprint = model_dir.read_meta(model_path)["fingerprint"]
  if info(model_path)["fingerprint"] != fingerprint:
    raise CodecError(f"the stock export of {model_path} is of another model than its "
                     f"weights (regenerate it: {REGENERATE})")
  with open(os.path.join(source, MANIFEST_FILE)) as f:
    manifest = json.load(f)["tensors"]
  weights = _weights(model_path)
  with np.load(os.path.join(source, EXTRAS_FILE)) as extras:
    values = [weights[t["weight"]].astype(t["dtype"]) if "weight" in t else extras[t["extra"]]
              for t in manifest]
  for tensor, value in zip(manifest, values):
    if _digest(value) != tensor["sha256"]:
      raise CodecError(f"the stock export of {model_path} does not match its weights "
                       f"({tensor['key']}; regenerate it: {REGENERATE})")
  os.makedirs(os.path.join(target, "variables"), exist_ok=True)
  for name in _GRAPH_FILES:
    os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
    shutil.copyfile(os.path.join(source, name), os.path.join(target, name))
  tf.raw_ops.SaveV2(prefix=os.path.join(target, _VARIABLES),
                    tensor_names=[t["key"] for t in manifest],
                    shape_and_slices=[""] * len(manifest),
                    tensors=[tf.constant(v.tobytes()) if t["dtype"] == _STRING else tf.constant(v)
                             for t, v in zip(manifest, values)])


def _in_temporary_dir(model_path: str, name: str) -> str:
  staging = tempfile.mkdtemp(prefix="tfc_codecs-")
  atexit.register(shutil.rmtree, staging, True)
  materialize(model_path, os.path.join(staging, name))
  return os.path.join(staging, name)


def saved_model_dir(model_path: str) -> str:
  """A complete SavedModel of `model_path`'s stock export: made once in the
  cache (with the cache off or unwritable, in a directory removed at exit)."""
  with open(os.path.join(model_path, EXPORT_DIR, "saved_model.pb"), "rb") as f:
    graph = hashlib.sha256(f.read()).hexdigest()[:16]
  name = f"stock-export-{model_dir.read_meta(model_path)['fingerprint']}-{graph}"
  with _lock:
    cache = traced_cache.cache_dir()
    if cache is None:
      return _in_temporary_dir(model_path, name)
    target = os.path.join(cache, name)
    if os.path.isfile(os.path.join(target, _VARIABLES + ".index")):
      return target
    try:
      os.makedirs(cache, exist_ok=True)
      staging = tempfile.mkdtemp(prefix=".tmp-", dir=cache)
    except OSError:
      return _in_temporary_dir(model_path, name)
    try:
      materialize(model_path, os.path.join(staging, name))
      try:
        os.replace(os.path.join(staging, name), target)
      except OSError:  # Another process made it first.
        if not os.path.isfile(os.path.join(target, _VARIABLES + ".index")):
          raise
    finally:
      shutil.rmtree(staging, ignore_errors=True)
    return target
