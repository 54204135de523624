"""The codec API: `load(name_or_path)` -> `ImageCodec` with compress/decompress.

A name is a shipped model family from `tfc_codecs/zoo/` (with an optional
quality); a path is a model directory written by `tfc_codecs train`. `ops`
picks the entropy coder of compress: "tfc" (tensorflow-compression's range
coder, coder 3) or "stock" (rANS in stock TensorFlow ops, coder 4, see
stock_coding.py); decompress reads either, whatever `ops` was loaded.
"""

import os
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from tfc_codecs import container, images, model_dir, zoo
from tfc_codecs.errors import CodecError, op_error_message


class ImageCodec:
  """A loaded, frozen model: uint8 RGB images <-> `.tfci` bytes."""

  def __init__(self, net, meta: Dict[str, Any], source: str,
               quality: Optional[int] = None):
    self.net = net
    self.quality = quality
    self.meta = meta
    self.source = source
    self.fingerprint = bytes.fromhex(meta["fingerprint"])
    self.max_pixels = images.MAX_PIXELS

  @property
  def codec_name(self) -> str:
    return self.net.codec_name

  @property
  def ops(self) -> str:
    """The entropy coder of compress: "tfc" or "stock"."""
    return self.net.ops

  def _net_for(self, coder: int):
    """The loaded network that decodes payloads of entropy coder `coder`."""
    ops = container.OPS_OF_CODER.get(coder, self.ops)
    if ops == self.ops:
      return self.net
    return load(self.source, self.quality, ops=ops).net

  @property
  def progressive(self) -> bool:
    """True if quality = number of iterations of one model (rnn)."""
    return self.net.progressive

  @property
  def num_qualities(self) -> int:
    """Qualities 1..n that this one model offers; 0 for a fixed-rate model."""
    return self.net.num_qualities

  def _check_quality(self, quality: int) -> None:
    if not 1 <= quality <= self.num_qualities:
      what = "quality (iterations)" if self.progressive else "quality"
      raise CodecError(f"{self.codec_name} {what} must be in "
                       f"1..{self.num_qualities}, not {quality}")

  def compress(self, image: np.ndarray, quality: Optional[int] = None,
               raw: bool = False) -> bytes:
    """uint8 [H, W, 3] (or gray/alpha/16-bit, converted) -> `.tfci` bytes.

    A variable-rate model takes `quality` here (for rnn, the number of
    iterations; `raw` stores its bits without entropy coding); a fixed-rate
    model's quality was chosen when loading it.
    """
    image, _ = images.as_rgb8(image)
    height, width = image.shape[:2]
    if height * width > self.max_pixels:
      raise CodecError(f"{height}x{width} image exceeds the limit of "
                       f"{self.max_pixels} pixels")
    if raw and not self.progressive:
      raise CodecError(f"{self.codec_name} has no raw mode")
    if self.num_qualities:
      quality = self.net.default_quality if quality is None else quality
      self._check_quality(quality)
      run = self.net.compress_raw if raw else self.net.compress
      payloads = run(tf.constant(image), tf.constant(quality, tf.int32)).numpy()
    else:
      if quality is not None and quality != self.quality:
        raise CodecError(f"load {self.codec_name} with quality {quality} to use it")
      payloads = self.net.compress(tf.constant(image)).numpy()
      quality = self.quality or 0
    return container.serialize(container.Bitstream(
        codec=self.codec_name, fingerprint=self.fingerprint, height=height,
        width=width, payloads=tuple(payloads), quality=quality,
        coder=container.CODER_RAW if raw else container.CODER_OF_OPS[self.ops]))

  def parse(self, data: bytes) -> container.Bitstream:
    """Validates a `.tfci` file for this model (progressive files may be cut
    at an iteration boundary)."""
    stream = container.parse(data, self.max_pixels, allow_truncation=self.progressive)
    if stream.codec != self.codec_name or stream.fingerprint != self.fingerprint:
      raise CodecError(
          f"file was made by {stream.codec} model {stream.fingerprint.hex()}, "
          f"not by the loaded {self.codec_name} model {self.fingerprint.hex()}")
    if self.progressive:
      if not stream.payloads or stream.declared_payloads > self.num_qualities:
        raise CodecError(f"corrupt or truncated file ({len(stream.payloads)} of "
                         f"{stream.declared_payloads} iterations)")
      return stream
    if (len(stream.payloads) != self.net.num_payloads
        or stream.coder not in container.OPS_OF_CODER):
      raise CodecError(f"corrupt file ({len(stream.payloads)} payloads, "
                       f"expected {self.net.num_payloads})")
    if self.num_qualities and not 1 <= stream.quality <= self.num_qualities:
      raise CodecError(f"corrupt header (quality {stream.quality} is not in "
                       f"1..{self.num_qualities})")
    return stream

  def decompress(self, data: bytes, iterations: Optional[int] = None) -> np.ndarray:
    """`.tfci` bytes -> uint8 [H, W, 3]; progressive codecs may stop early."""
    stream = self.parse(data)
    payloads = tf.constant(stream.payloads, tf.string)
    image_shape = tf.constant([stream.height, stream.width], tf.int32)
    if iterations is not None and not self.progressive:
      raise CodecError(f"{self.codec_name} is not progressive (no --iterations)")
    net = self._net_for(stream.coder)
    try:
      if self.progressive:
        if iterations is not None:
          if iterations < 1:
            raise CodecError("--iterations must be at least 1")
          payloads = payloads[:iterations]
        run = net.decompress_raw if stream.coder == container.CODER_RAW else net.decompress
        image = run(payloads, image_shape)
      elif self.num_qualities:
        image = net.decompress(payloads, image_shape, tf.constant(stream.quality, tf.int32))
      else:
        image = net.decompress(payloads, image_shape)
    except tf.errors.OpError as e:
      raise CodecError(f"corrupt payload ({op_error_message(e.message)})") from None
    return image.numpy()


  def decompress_steps(self, data: bytes) -> np.ndarray:
    """A progressive codec's image after each iteration of an entropy-coded
    file (either coder), uint8 [K, H, W, 3]: step k equals
    `decompress(data, iterations=k)`."""
    stream = self.parse(data)
    if not self.progressive or stream.coder not in container.OPS_OF_CODER:
      raise CodecError("decompress_steps needs a range-coded or stock-coded file of a "
                       "progressive codec")
    try:
      steps = self._net_for(stream.coder).decompress_steps(
          tf.constant(stream.payloads, tf.string),
          tf.constant([stream.height, stream.width], tf.int32))
    except tf.errors.OpError as e:
      raise CodecError(f"corrupt payload ({op_error_message(e.message)})") from None
    return steps.numpy()


_cache: Dict[tuple, ImageCodec] = {}


def load(name_or_path: Optional[str] = None,
         quality: Optional[int] = None, ops: str = "tfc"):
  """Loads a shipped model, a trained model directory or a SavedModel export
  (cached); returns an `ImageCodec` (an `export.ExportedCodec` for exports).
  `ops` is the entropy coder its compress uses ("tfc" or "stock")."""
  from tfc_codecs import export  # pylint: disable=import-outside-toplevel
  if name_or_path and export.is_export(name_or_path):
    return export.ExportedCodec(name_or_path)
  if ops not in container.CODER_OF_OPS:
    raise CodecError(f"ops must be one of {', '.join(container.CODER_OF_OPS)}, not {ops!r}")
  path = os.path.abspath(zoo.resolve(name_or_path, quality))
  key = _cache_key(path) + (ops,)
  if key not in _cache:
    net, meta = model_dir.load(path, ops)
    _cache[key] = ImageCodec(net, meta, path, zoo.quality_of(path))
  return _cache[key]


def _cache_key(path: str):
  """A model directory and the state of its files: a model rewritten in place
  (e.g. a training run exported again) is loaded afresh."""
  stamps = []
  for name in ("model.json", "weights.npz"):
    try:
      info = os.stat(os.path.join(path, name))
      stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
    except OSError:
      stamps.append(None)  # model_dir.load reports the missing file.
  return path, tuple(stamps)


def load_for(data: bytes, name_or_path: Optional[str] = None) -> ImageCodec:
  """The model that decodes `.tfci` bytes: the given one, else the shipped
  model whose fingerprint the file names."""
  if name_or_path:
    return load(name_or_path)
  stream = container.parse(data, images.MAX_PIXELS, allow_truncation=True)
  entry = zoo.find(stream.fingerprint.hex())  # The model then checks the cut.
  if entry:
    return load(entry["path"])
  raise CodecError(f"file was made by {stream.codec} model "
                   f"{stream.fingerprint.hex()}, which is not shipped; "
                   "pass it with --model PATH")
