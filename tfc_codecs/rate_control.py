"""Rate control: the quality that meets a bits-per-pixel or PSNR target.

`--target_bpp B` picks the highest quality whose file fits B bits per pixel;
`--target_psnr P` the lowest quality whose decoded image reaches P dB (the
smallest such file, as files grow with quality). Qualities are a
variable-rate model's inputs, rnn's iterations, or a fixed-rate family's rate
points. The search tries them in turn from the top (bpp) or the bottom (PSNR)
and stops at the first that meets the target, so the answer is exact even
where a poorly trained model's PSNR is not monotonic in quality. A progressive
model (rnn) is encoded once at its top quality and cut, since its first K
payloads are exactly the K-iteration file.
"""

import dataclasses
from typing import Callable, List, Optional, Tuple

import numpy as np

from tfc_codecs import api, container, images, zoo
from tfc_codecs.contract import LoadedCodec, RateKind, cut_progressive
from tfc_codecs.errors import CodecError
from tfc_codecs.evaluation import metrics


@dataclasses.dataclass
class Choice:
  """The file that met the target, and how."""
  data: bytes
  quality: int
  codec: LoadedCodec
  bpp: float
  psnr: Optional[float] = None


def _encoders(model: Optional[str], image: np.ndarray, raw: bool, ops: Optional[str],
              max_pixels: int) -> Tuple[List[int], Callable[[int], Tuple[bytes, LoadedCodec]]]:
  """Ascending qualities of `model`, and quality -> (file bytes, codec)."""
  codec = api.load(model, ops=ops, max_pixels=max_pixels)
  if codec.rate_kind is RateKind.PROGRESSIVE:
    full = container.parse(codec.compress(image, codec.num_qualities, raw), codec.max_pixels)
    return (list(range(1, codec.num_qualities + 1)),
            lambda quality: (container.serialize(cut_progressive(full, quality)), codec))
  if codec.rate_kind is RateKind.VARIABLE:
    return (list(range(1, codec.num_qualities + 1)),
            lambda quality: (codec.compress(image, quality, raw), codec))
  name = model or zoo.DEFAULT_MODEL
  if name in zoo.family_names():
    qualities = sorted(e["quality"] for e in zoo.shipped_models() if e["name"] == name)
  else:
    qualities = [codec.default_quality]

  def encode(quality):
    rate_point = (api.load(model, quality, ops, max_pixels) if name in zoo.family_names()
                  else codec)
    return rate_point.compress(image, raw=raw), rate_point

  return qualities, encode


def compress_to_target(model: Optional[str], image: np.ndarray,
                       target_bpp: Optional[float] = None,
                       target_psnr: Optional[float] = None,
                       raw: bool = False, ops: Optional[str] = None,
                       max_pixels: int = images.MAX_PIXELS) -> Choice:
  """Compresses `image` with the quality of `model` that meets the target
  (entropy coder `ops` and pixel limit `max_pixels`, see `api.load`)."""
  if (target_bpp is None) == (target_psnr is None):
    raise CodecError("give exactly one of --target_bpp and --target_psnr")
  if target_bpp is not None and not target_bpp > 0:
    raise CodecError(f"--target_bpp must be positive, not {target_bpp}")
  image, _ = images.as_rgb8(image)
  height, width = image.shape[:2]
  qualities, encode = _encoders(model, image, raw, ops, max_pixels)
  tried: List[Choice] = []
  for quality in (qualities[::-1] if target_bpp is not None else qualities):
    data, codec = encode(quality)
    choice = Choice(data, quality, codec, metrics.bits_per_pixel(len(data), height, width))
    if target_bpp is not None:
      if choice.bpp <= target_bpp:
        return choice
    else:
      choice.psnr = metrics.psnr(image, codec.decompress(data))
      if choice.psnr >= target_psnr:
        return choice
    tried.append(choice)
  if target_bpp is not None:
    raise CodecError(f"no quality fits {target_bpp} bpp (the lowest, "
                     f"{choice.quality}, needs {choice.bpp:.4f} bpp)")
  best = max(tried, key=lambda c: c.psnr)
  raise CodecError(f"no quality reaches {target_psnr} dB (the best, quality "
                   f"{best.quality}, gives {best.psnr:.2f} dB)")
