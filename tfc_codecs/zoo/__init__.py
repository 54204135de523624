"""The shipped models: `index.json` names each family's rate points.

Each rate point is a model directory (see `model_dir`) with its provenance and
Kodak results in `model.json`. Nothing here imports TensorFlow.
"""

import json
import os
from typing import Any, Dict, List, Optional

from tfc_codecs import model_dir
from tfc_codecs.errors import CodecError

ZOO_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MODEL = "hyperprior"


def _index() -> Dict[str, Any]:
  with open(os.path.join(ZOO_DIR, "index.json")) as f:
    return json.load(f)


def shipped_models() -> List[Dict[str, Any]]:
  """One entry per shipped model: name, quality (None for a progressive
  model, whose quality is its number of iterations), path, meta, default."""
  entries = []
  for name, family in sorted(_index().items()):
    if family.get("progressive"):
      points = [(None, family["path"])]
    else:
      points = [(int(q), p) for q, p in sorted(family["qualities"].items(),
                                               key=lambda item: int(item[0]))]
    for quality, relative in points:
      path = os.path.join(ZOO_DIR, relative)
      entries.append(dict(name=name, quality=quality, path=path,
                          default=quality == family.get("default_quality")
                          or family.get("progressive", False),
                          meta=model_dir.read_meta(path)))
  return entries


def resolve(name_or_path: Optional[str] = None, quality: Optional[int] = None) -> str:
  """The model directory for a shipped name (+ quality) or a path.

  For a progressive family, and for a path, the quality is not a choice of
  model: the codec checks it when compressing.
  """
  name_or_path = name_or_path or DEFAULT_MODEL
  index = _index()
  if name_or_path in index:
    family = index[name_or_path]
    if family.get("progressive"):
      return os.path.join(ZOO_DIR, family["path"])
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
  """The zoo quality of a shipped, non-progressive model directory, else None."""
  for entry in shipped_models():
    if os.path.abspath(entry["path"]) == os.path.abspath(path):
      return entry["quality"]
  return None


def find(fingerprint: str) -> Optional[Dict[str, Any]]:
  """The shipped model with this fingerprint (hex), or None."""
  for entry in shipped_models():
    if entry["meta"]["fingerprint"] == fingerprint:
      return entry
  return None


def family_names() -> List[str]:
  """Names of the shipped model families."""
  return sorted(_index())


def read_fingerprint(path: str) -> str:
  """The fingerprint of the model directory at `path`."""
  return model_dir.read_meta(path)["fingerprint"]
