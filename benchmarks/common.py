"""Paths and output helpers shared by the benchmark scripts."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# So that a script run from a checkout imports this tfc_codecs (no TensorFlow here).
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

SHARED = os.path.join(ROOT, "..", "shared")
KODAK = os.path.join(SHARED, "data", "kodak")
VALIDATION = os.path.join(SHARED, "data", "validation")
BSDS500 = os.path.join(SHARED, "data", "bsds500")


def write_json(path: str, report: dict, indent: int = 2) -> None:
  """Writes `report` to `path` as JSON with a trailing newline, making the
  parent directory if needed; atomically, so an interrupted run leaves the old file."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    json.dump(report, f, indent=indent)
    f.write("\n")
  os.replace(path + ".tmp", path)
