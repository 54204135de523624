"""The shipped models: `index.json` names each family's rate points, and the
models it shipped before (retired: their files still decode).

Each rate point is a model directory (see `model_dir`) with its provenance and
Kodak results in `model.json`. Nothing here imports TensorFlow.
"""

import json
import os
from typing import Any, Dict, List, Optional

from tfc_codecs import model_dir
from tfc_codecs.errors import CodecError

ZOO_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = "channelwise"


def _index() -> Dict[str, Any]:
  with open(os.path.join(ZOO_DIR, "index.json")) as f:
    return json.load(f)


def shipped_models() -> List[Dict[str, Any]]:
  """One entry per shipped rate point: name, quality, path, meta, default.

  A family is either one model per quality (`"qualities": {q: path}`) or one
  variable-rate model (`"model": path`) whose qualities are inputs of
  compress (for rnn, iterations); its entries share that path.
  """
  entries = []
  for name, family in sorted(_index().items()):
    if "model" in family:
      path = os.path.join(ZOO_DIR, family["model"])
      meta = model_dir.read_meta(path)
      points = [(q, path, meta) for q in range(1, meta["num_qualities"] + 1)]
      default = meta["default_quality"]
    else:
      points = [(int(q), os.path.join(ZOO_DIR, p), None)
                for q, p in sorted(family["qualities"].items(), key=lambda i: int(i[0]))]
      default = family["default_quality"]
    for quality, path, meta in points:
      entries.append(dict(name=name, quality=quality, path=path,
                          default=quality == default,
                          meta=meta or model_dir.read_meta(path)))
  return entries


def resolve(name_or_path: Optional[str] = None, quality: Optional[int] = None) -> str:
  """The model directory for a shipped name (+ quality) or a path.

  For a variable-rate family, and for a path, the quality is not a choice of
  model: the codec checks it when compressing.
  """
  name_or_path = name_or_path or DEFAULT_MODEL
  index = _index()
  if name_or_path in index:
    family = index[name_or_path]
    if "model" in family:
      return os.path.join(ZOO_DIR, family["model"])
    quality = family["default_quality"] if quality is None else quality
    if str(quality) not in family["qualities"]:
      raise CodecError(f"model {name_or_path} has no quality {quality} (it has "
                       f"{', '.join(sorted(family['qualities']))})")
    return os.path.join(ZOO_DIR, family["qualities"][str(quality)])
  if model_dir.is_model_dir(name_or_path):
    return name_or_path
  raise CodecError(f"no shipped model or model directory named {name_or_path!r} "
                   f"(shipped: {', '.join(sorted(index))})")


def quality_of(path: str) -> Optional[int]:
  """The zoo quality of a shipped fixed-rate model directory, else None."""
  for entry in shipped_models():
    if (os.path.abspath(entry["path"]) == os.path.abspath(path)
        and not entry["meta"]["num_qualities"]):
      return entry["quality"]
  return None


def kodak_results(entry: Dict[str, Any]) -> Dict[str, float]:
  """The recorded Kodak bpp/PSNR/MS-SSIM of a rate point ({} if none)."""
  kodak = entry["meta"].get("kodak") or {}
  if entry["meta"]["num_qualities"]:
    return kodak.get(str(entry["quality"]), {})
  return kodak


def retired_models() -> List[Dict[str, Any]]:
  """Models a family shipped before its current one (`"retired": [path]`):
  not offered for compressing, kept so that their files still decode."""
  entries = []
  for name, family in sorted(_index().items()):
    for relative in family.get("retired", []):
      path = os.path.join(ZOO_DIR, relative)
      entries.append(dict(name=f"{name} (retired {os.path.basename(relative)})",
                          quality=None, path=path, default=False,
                          meta=model_dir.read_meta(path)))
  return entries


def find(fingerprint: str) -> Optional[Dict[str, Any]]:
  """The shipped or retired model with this fingerprint (hex), or None."""
  for entry in shipped_models() + retired_models():
    if entry["meta"]["fingerprint"] == fingerprint:
      return entry
  return None


def family_names() -> List[str]:
  """Names of the shipped model families."""
  return sorted(_index())


def read_fingerprint(path: str) -> str:
  """The fingerprint of the model directory at `path`."""
  return model_dir.read_meta(path)["fingerprint"]
