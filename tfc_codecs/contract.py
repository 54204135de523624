"""What every loaded codec offers: the contract the CLI, `evaluate`,
`rate_control`, `export` and `serve` are written against.

`tfc_codecs.load` returns a `LoadedCodec`: an `api.ImageCodec` (a shipped
model or a trained model directory) or an `exported_codec.ExportedCodec` (a
SavedModel written by `tfc_codecs export`). A codec's `RateKind` says how its
qualities work; code that depends on it branches on `rate_kind`, nothing else.

Determinism (what may differ between machines):
  * The bitstream's parsing and the entropy-decoded latents (every symbol an
    entropy decoder reads, and the table it reads it with) are bit-identical
    in every process, at every thread count, with oneDNN on or off, on every
    CPU kind and TensorFlow version: whatever sets a symbol's table is
    integer or exact fixed point (`layers/fixed_point.py`, the rnn's integer
    bit contexts), so no decoder can desynchronize.
  * Decoded pixels come from float transforms: identical within one
    installation (same machine, TensorFlow and settings: another process,
    another thread count), and within ±`PIXEL_TOLERANCE_ACROSS_KERNELS` per
    sample across kernel libraries (oneDNN on/off, TensorFlow versions, CPU
    kinds), as JPEG decoders' outputs are.
  * compress writes the same bytes in every process, at every thread count
    and with oneDNN on or off on one machine (tested). Its analysis transforms
    (and the rnn's encoder) are float: on another CPU kind a latent within
    rounding error of a rounding boundary may round the other way, giving
    another valid file (expected to be rare; not tested across CPU kinds),
    which then decodes identically everywhere.
Tested by tests/test_determinism.py and tests/test_golden.py.
"""

import dataclasses
import enum
from typing import Optional, Protocol, runtime_checkable

import numpy as np

from tfc_codecs import container
from tfc_codecs.errors import CodecError


# Decoded samples may differ by this much between kernel libraries (see above).
PIXEL_TOLERANCE_ACROSS_KERNELS = 1


def max_pixel_difference(image: np.ndarray, reference: np.ndarray) -> int:
  """The largest absolute difference between two decoded images' samples
  (compare with PIXEL_TOLERANCE_ACROSS_KERNELS)."""
  if image.shape != reference.shape:
    raise CodecError(f"images of shapes {image.shape} and {reference.shape} cannot be compared")
  if not image.size:
    return 0
  return int(np.max(np.abs(image.astype(np.int32) - reference.astype(np.int32))))


class RateKind(enum.Enum):
  """How a model offers its rates."""
  SINGLE = "single"  # One rate per model (a family ships one model per quality).
  VARIABLE = "variable"  # One model, qualities 1..num_qualities: an input of compress.
  PROGRESSIVE = "progressive"  # Quality = iterations; see `cut_progressive`.

  @classmethod
  def of(cls, num_qualities: int, progressive: bool) -> "RateKind":
    """The kind of a model with `num_qualities` qualities (0: fixed rate)."""
    if progressive:
      return cls.PROGRESSIVE
    return cls.VARIABLE if num_qualities else cls.SINGLE

  @property
  def takes_quality(self) -> bool:
    """True if compress takes a quality (one model, several rates)."""
    return self is not RateKind.SINGLE


@runtime_checkable
class LoadedCodec(Protocol):
  """A loaded model: uint8 RGB images <-> `.tfci` bytes."""

  @property
  def codec_name(self) -> str:
    """The codec's registry name, recorded in every file."""

  @property
  def fingerprint(self) -> bytes:
    """8 bytes identifying the weights and tables, recorded in every file."""

  @property
  def source(self) -> str:
    """The model directory or export version directory it was loaded from."""

  @property
  def ops(self) -> str:
    """The entropy coder of compress: "tfc" or "stock"."""

  @property
  def rate_kind(self) -> RateKind:
    """How this model offers its rates."""

  @property
  def num_qualities(self) -> int:
    """Qualities 1..n that compress takes; 0 for a single-rate model."""

  @property
  def default_quality(self) -> int:
    """The quality compress uses when given none (a single-rate model's own
    quality, 0 if it has none)."""

  @property
  def max_pixels(self) -> int:
    """The largest image (and `.tfci` header) size accepted, in pixels."""

  def compress(self, image: np.ndarray, quality: Optional[int] = None,
               raw: bool = False) -> bytes:
    """uint8 [H, W, 3] -> `.tfci` bytes; `raw`: progressive codecs only."""

  def decompress(self, data: bytes, iterations: Optional[int] = None) -> np.ndarray:
    """`.tfci` bytes -> uint8 [H, W, 3]; progressive codecs may stop early."""

  def decompress_steps(self, data: bytes) -> np.ndarray:
    """A progressive codec's image after each iteration, uint8 [K, H, W, 3]."""


def cut_progressive(stream: container.Bitstream, iterations: int) -> container.Bitstream:
  """A progressive codec's file cut after `iterations` payloads (fewer if it
  has fewer): byte for byte the file compress writes at that quality."""
  if iterations < 1:
    raise CodecError("--iterations must be at least 1")
  if iterations >= len(stream.payloads):
    return stream
  return dataclasses.replace(stream, payloads=stream.payloads[:iterations],
                             quality=iterations)
