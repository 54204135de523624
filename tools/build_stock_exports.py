"""Regenerates the stock-op export beside every shipped and retired zoo model
(`tfc_codecs/shipped_exports.py`), from its weights and the current code.
Needs the `[train]` install. tests/test_shipped_exports.py fails when one is
not current.

    python -m tools.build_stock_exports            # every zoo model
    python -m tools.build_stock_exports channelwise/vr
"""

import os
import sys

from tfc_codecs import export, zoo


def main(argv) -> int:
  paths = sorted({entry["path"] for entry in zoo.shipped_models() + zoo.retired_models()})
  if argv[1:]:
    paths = [os.path.join(zoo.ZOO_DIR, relative) for relative in argv[1:]]
  for path in paths:
    print(f"wrote {export.write_shipped_export(path)}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
