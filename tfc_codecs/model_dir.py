"""A trained model on disk: `model.json` (codec, config, provenance) +
`weights.npz` (float16 weights and int32 range-coding tables).

The fingerprint is a hash of exactly what is stored, so a bitstream records
which weights and tables made it.
"""

import hashlib
import json
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Dict, Tuple

import numpy as np

from tfc_codecs.errors import CodecError

if TYPE_CHECKING:
  from tfc_codecs.codecs.base import Codec

MODEL_JSON = "model.json"
WEIGHTS_NPZ = "weights.npz"
FORMAT_VERSION = 1
WEIGHT_DTYPE = np.float16


def is_model_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(path, MODEL_JSON))


def round_weights(codec: "Codec") -> None:
  """Rounds the trainable weights to the stored precision, in place."""
  for variable in codec.trainable_weights:
    variable.assign(variable.numpy().astype(WEIGHT_DTYPE).astype(np.float32))


def _fingerprint(meta: Dict[str, Any], arrays: Dict[str, np.ndarray]) -> str:
  digest = hashlib.sha256()
  digest.update(json.dumps({"codec": meta["codec"], "config": meta["config"]},
                           sort_keys=True).encode())
  for key in sorted(arrays):
    digest.update(key.encode())
    digest.update(np.ascontiguousarray(arrays[key]).tobytes())
  return digest.hexdigest()[:16]


def save(codec: "Codec", path: str, provenance: Dict[str, Any],
         overwrite: bool = False) -> str:
  """Writes a frozen codec to directory `path` atomically; returns its
  fingerprint. `provenance` says how it was made (by `train`: the run's
  `TrainConfig.to_dict()` with the run's facts); it is not fingerprinted."""
  if codec.coder is None:
    raise CodecError("model must be frozen (range-coding tables built) before saving")
  if os.path.exists(path) and not overwrite:
    raise CodecError(f"{path} exists (use --overwrite to replace it)")
  arrays = {f"weight/{i:04d}": v.numpy().astype(WEIGHT_DTYPE)
            for i, v in enumerate(codec.trainable_weights)}
  arrays.update({f"table/{k}": np.asarray(v, np.int32)
                 for k, v in codec.entropy_tables().items()})
  # An option at the value its absence implies is left out, so an older model
  # resaves with the same fingerprint.
  config = {k: v for k, v in codec.config.items()
            if k not in codec.stored_config_defaults or codec.stored_config_defaults[k] != v}
  meta = dict(format=FORMAT_VERSION, codec=codec.codec_name,
              config=config,
              weight_names=[v.name for v in codec.trainable_weights],
              num_qualities=codec.num_qualities,
              default_quality=getattr(codec, "default_quality", 0),
              provenance=provenance)
  meta["fingerprint"] = _fingerprint(meta, arrays)
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".tmp-model-", dir=parent)
  try:
    np.savez_compressed(os.path.join(staging, WEIGHTS_NPZ), **arrays)
    with open(os.path.join(staging, MODEL_JSON), "w") as f:
      json.dump(meta, f, indent=2, sort_keys=True)
      f.write("\n")
    if os.path.exists(path):
      shutil.rmtree(path)
    os.chmod(staging, 0o755)
    os.replace(staging, path)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return meta["fingerprint"]


def read_meta(path: str) -> Dict[str, Any]:
  """The model.json of a model directory."""
  try:
    with open(os.path.join(path, MODEL_JSON)) as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    raise CodecError(f"cannot read model {path}: {e}") from None
  if meta.get("format") != FORMAT_VERSION:
    raise CodecError(f"model {path} has unsupported format {meta.get('format')!r}")
  meta.setdefault("num_qualities", 0)
  meta.setdefault("default_quality", 0)
  return meta


def load(path: str, ops: str = "tfc") -> Tuple["Codec", Dict[str, Any]]:
  """Rebuilds the frozen codec stored in `path`, entropy coding with `ops`
  ("tfc": tensorflow-compression's range coder; "stock": rANS in stock
  TensorFlow ops); returns (codec, meta)."""
  from tfc_codecs import registry  # pylint: disable=import-outside-toplevel
  meta = read_meta(path)
  try:
    with np.load(os.path.join(path, WEIGHTS_NPZ)) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except (OSError, ValueError) as e:
    raise CodecError(f"cannot read weights of model {path}: {e}") from None
  if _fingerprint(meta, arrays) != meta.get("fingerprint"):
    raise CodecError(f"model {path} is corrupt (fingerprint mismatch)")
  cls = registry.codec_class(meta["codec"])
  codec = cls(**{**cls.stored_config_defaults, **meta["config"]})
  weights = codec.trainable_weights
  stored = sorted(k for k in arrays if k.startswith("weight/"))
  if len(stored) != len(weights):
    raise CodecError(f"model {path} does not match codec {meta['codec']!r}")
  for variable, key in zip(weights, stored):
    if tuple(variable.shape) != arrays[key].shape:
      raise CodecError(f"model {path} does not match codec {meta['codec']!r}")
    variable.assign(arrays[key].astype(np.float32))
  codec.ops = ops
  codec.set_entropy_tables({k[len("table/"):]: v for k, v in arrays.items()
                            if k.startswith("table/")})
  return codec, meta


def record(path: str, key: str, value: Any) -> None:
  """Sets one top-level entry of a model's model.json (not part of the
  fingerprint), e.g. its measured Kodak results."""
  meta = read_meta(path)
  meta[key] = value
  staging = os.path.join(path, MODEL_JSON + ".tmp")
  with open(staging, "w") as f:
    json.dump(meta, f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(staging, os.path.join(path, MODEL_JSON))
