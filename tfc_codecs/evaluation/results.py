"""Reading rate–distortion results: CompressAI JSON and TFC's text tables.

Both become the CompressAI schema `{name, description, results: {bpp: [...],
psnr-rgb: [...], ms-ssim-rgb: [...]}}`. A TFC table (`*.txt`, two columns:
bpp and the metric named by its folder, e.g. `PSNR_sRGB_RGB`) is merged with
its siblings for the other metric when they exist.
"""

import json
import os
from typing import Dict

import numpy as np

from tfc_codecs.errors import CodecError

_TFC_FOLDERS = {"PSNR_sRGB_RGB": "psnr-rgb", "MS-SSIM_sRGB_RGB": "ms-ssim-rgb"}


def _read_table(path: str) -> np.ndarray:
  rows = [line.replace(",", " ").split() for line in open(path)
          if line.strip() and not line.lstrip().startswith("#")]
  return np.array([[float(v) for v in row[:2]] for row in rows])


def load(path: str) -> Dict:
  """A results file in the CompressAI schema, from JSON or a TFC table."""
  try:
    if path.endswith(".txt"):
      folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
      if folder not in _TFC_FOLDERS:
        raise CodecError(f"{path}: TFC tables must sit in one of "
                         f"{', '.join(_TFC_FOLDERS)}")
      results = {}
      for sibling, metric in _TFC_FOLDERS.items():
        other = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))),
                             sibling, os.path.basename(path))
        if os.path.exists(other):
          table = _read_table(other)
          results.setdefault("bpp", table[:, 0].tolist())
          if len(table) == len(results["bpp"]) and np.allclose(table[:, 0], results["bpp"]):
            results[metric] = table[:, 1].tolist()
      name = os.path.splitext(os.path.basename(path))[0]
      return dict(name=name, description=f"tensorflow-compression table {path}",
                  results=results)
    with open(path) as f:
      report = json.load(f)
  except (OSError, ValueError, IndexError) as e:
    raise CodecError(f"cannot read results {path}: {e}") from None
  if not isinstance(report, dict) or "bpp" not in report.get("results", {}):
    raise CodecError(f"{path} is not in the CompressAI results schema")
  report.setdefault("name", os.path.splitext(os.path.basename(path))[0])
  return report
