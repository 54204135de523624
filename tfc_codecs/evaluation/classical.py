"""Classical codecs through Pillow, measured on the same footing as ours.

Each codec maps a quality setting to file bytes and back; `QUALITIES` lists
the default sweep (JPEG 2000's setting is Pillow's compression ratio).
"""

import io
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
from PIL import Image, features

from tfc_codecs.errors import CodecError


def _save_kwargs(name: str, quality: int) -> Tuple[str, Dict]:
  if name == "jpeg-420":
    return "JPEG", dict(quality=quality, subsampling="4:2:0", optimize=True)
  if name == "jpeg-444":
    return "JPEG", dict(quality=quality, subsampling="4:4:4", optimize=True)
  if name == "webp":
    return "WEBP", dict(quality=quality, method=6)
  if name == "avif":
    return "AVIF", dict(quality=quality, subsampling="4:4:4", speed=6)
  if name == "jpeg2000":
    return "JPEG2000", dict(quality_mode="rates", quality_layers=[quality],
                            irreversible=True)
  raise CodecError(f"unknown classical codec {name!r}")


QUALITIES: Dict[str, Sequence[int]] = {
    "jpeg-420": tuple(range(5, 100, 5)),
    "jpeg-444": tuple(range(5, 100, 5)),
    "webp": tuple(range(0, 101, 10)),
    "avif": tuple(range(10, 101, 10)),
    "jpeg2000": (200, 120, 80, 60, 40, 30, 20, 15, 10, 6),
}
_FEATURE = {"jpeg-420": "jpg", "jpeg-444": "jpg", "webp": "webp",
            "avif": "avif", "jpeg2000": "jpg_2000"}


def available() -> Tuple[str, ...]:
  """The classical codecs this Pillow build can write."""
  return tuple(n for n in QUALITIES if features.check(_FEATURE[n]))


def encoder(name: str, quality: int) -> Callable[[np.ndarray], bytes]:
  """A function uint8 [H, W, 3] -> file bytes."""
  if name not in available():
    raise CodecError(f"{name} is not available in this Pillow build")
  image_format, kwargs = _save_kwargs(name, quality)

  def encode(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=image_format, **kwargs)
    return buffer.getvalue()

  return encode


def decode(data: bytes) -> np.ndarray:
  """Any of these codecs' bytes -> uint8 [H, W, 3]."""
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert("RGB"))
