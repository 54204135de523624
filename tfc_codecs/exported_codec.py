"""A SavedModel written by `tfc_codecs export`, loaded back as a
`contract.LoadedCodec` (`tfc_codecs.load(EXPORT_DIR)`).

An export's `INFO_FILE` records what the contract needs without running the
graphs (codec, fingerprint, qualities, entropy coder); its `compress_image`
and `decompress_image` functions do the work.
"""

import json
import os
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tfc_codecs import container, images, tfc_stack
from tfc_codecs.contract import RateKind, cut_progressive
from tfc_codecs.errors import CodecError, op_error_message

INFO_FILE = os.path.join("assets.extra", "tfc_codecs.json")


def is_export(path: str) -> bool:
  """True for an exported version directory or a model base holding versions."""
  return os.path.isfile(os.path.join(path, "saved_model.pb")) or (
      os.path.isdir(path) and any(v.isdigit() and os.path.isfile(
          os.path.join(path, v, "saved_model.pb")) for v in os.listdir(path)))


def _read_info(path: str) -> Optional[Dict[str, Any]]:
  """The `INFO_FILE` of export version directory `path`, None if it has none."""
  try:
    with open(os.path.join(path, INFO_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _ops_of(info: Dict[str, Any]) -> str:
  return info.get("ops", "tfc")  # Exports before the stock coder: "tfc".


def export_ops(path: str) -> Optional[str]:
  """The entropy coder ("tfc" or "stock") of export version directory `path`,
  None if it is not a tfc_codecs export."""
  info = _read_info(path)
  return None if info is None else _ops_of(info)


class ExportedCodec:
  """An export (a version directory, or a model base: its newest version)
  run through its SavedModel functions."""

  def __init__(self, path: str, max_pixels: int = images.MAX_PIXELS,
               source: Optional[str] = None):
    """`source`: what to report as the codec's source (default: `path`)."""
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
      path = os.path.join(path, str(max(int(v) for v in os.listdir(path) if v.isdigit())))
    info = _read_info(path)
    if info is None:
      raise CodecError(f"{path} is not a tfc_codecs export (no {INFO_FILE})")
    self.info: Dict[str, Any] = info
    self.ops = _ops_of(info)
    if self.ops == "tfc":
      tfc_stack.require("an export made with --ops tfc (tensorflow-compression's range coder)")
      import tensorflow_compression  # pylint: disable=import-outside-toplevel,unused-import
    self.source = source or path
    self.module = tf.saved_model.load(path)
    self.codec_name: str = self.info["codec"]
    self.fingerprint = bytes.fromhex(self.info["fingerprint"])
    self.quality: Optional[int] = self.info["quality"]
    self.num_qualities: int = self.info["num_qualities"]
    self.rate_kind = RateKind.of(self.num_qualities, self.info["progressive"])
    self.max_pixels = max_pixels  # Of `.tfci` headers (the graphs have their own).

  @property
  def default_quality(self) -> int:
    if self.rate_kind.takes_quality:
      return self.info["default_quality"]
    return self.quality or 0

  def compress(self, image: np.ndarray, quality: Optional[int] = None,
               raw: bool = False) -> bytes:
    """uint8 [H, W, 3] (or gray/alpha/16-bit, converted) -> `.tfci` bytes."""
    if raw:
      raise CodecError("exports write entropy-coded files only (no raw mode)")
    image, _ = images.as_rgb8(image)
    args = [tf.constant(image[None])]
    if self.rate_kind.takes_quality:
      quality = self.default_quality if quality is None else quality
      args.append(tf.constant([quality], tf.int32))
    elif quality not in (None, self.quality):
      raise CodecError(f"this export has only quality {self.quality}")
    return self._run(self.module.compress_image, *args)["bitstream_bytes"].numpy()[0]

  def decompress(self, data: bytes, iterations: Optional[int] = None) -> np.ndarray:
    """`.tfci` bytes -> uint8 [H, W, 3]; progressive files may stop early."""
    if iterations is not None:
      if self.rate_kind is not RateKind.PROGRESSIVE:
        raise CodecError(f"{self.codec_name} is not progressive (no --iterations)")
      stream = container.parse(data, self.max_pixels, allow_truncation=True)
      data = container.serialize(cut_progressive(stream, iterations))
    return self._run(self.module.decompress_image,
                     tf.constant([data]))["image"].numpy()[0]

  def decompress_steps(self, data: bytes) -> np.ndarray:
    """A progressive export's image after each iteration, uint8 [K, H, W, 3]."""
    if self.rate_kind is not RateKind.PROGRESSIVE:
      raise CodecError("decompress_steps needs a progressive codec")
    stream = container.parse(data, self.max_pixels, allow_truncation=True)
    return np.stack([self.decompress(data, k) for k in range(1, len(stream.payloads) + 1)])

  @staticmethod
  def _run(function: Callable, *args) -> Dict[str, tf.Tensor]:
    try:
      return function(*args)
    except tf.errors.InvalidArgumentError as e:
      raise CodecError(op_error_message(e.message)) from None
