"""Which install profile this is, and the one error for what needs the other.

The plain install (`pip install tfc_codecs`) has stock TensorFlow only, any
version from 2.14 to the newest: it compresses, decompresses, evaluates and
serves the shipped models through their stock-op exports (`shipped_exports`)
and never imports tensorflow_compression. The `[train]` extra adds
tensorflow-compression 2.14.1 (which pins TensorFlow 2.14 and Python 3.11):
training, building models from weights (trained model directories, exports of
them), and TFC's range coder (`--ops tfc`, coder 3).

`TFC_CODECS_WITHOUT_TFC=1` makes an install that has tensorflow-compression
behave as the plain install does (it is then never imported).
"""

import functools
import importlib.util
import os

from tfc_codecs.errors import CodecError

WITHOUT_TFC_ENV = "TFC_CODECS_WITHOUT_TFC"
INSTALL_HINT = "pip install 'tfc_codecs[train]' (Python 3.11; it brings TensorFlow 2.14)"


@functools.lru_cache(maxsize=None)
def available() -> bool:
  """True if tensorflow-compression is installed (and not switched off)."""
  if os.environ.get(WITHOUT_TFC_ENV, "") not in ("", "0"):
    return False
  return importlib.util.find_spec("tensorflow_compression") is not None


def require(what: str) -> None:
  """Raises the one-line CodecError for `what` unless tensorflow-compression
  is available."""
  if not available():
    raise CodecError(f"{what} needs tensorflow-compression, which this install does "
                     f"not have: {INSTALL_HINT}")


def default_ops() -> str:
  """The entropy coder compress uses by default: TFC's range coder where it is
  installed, else the stock-op rANS coder."""
  return "tfc" if available() else "stock"
