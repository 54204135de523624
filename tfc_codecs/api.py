"""The codec API: `load(name_or_path)` -> `ImageCodec` with compress/decompress.

A name is a shipped model family from `tfc_codecs/zoo/` (with an optional
quality); a path is a model directory written by `tfc_codecs train`.
"""

import os
from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from tfc_codecs import container, images, model_dir, zoo
from tfc_codecs.errors import CodecError


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
  def progressive(self) -> bool:
    """True if quality = number of iterations of one model (rnn)."""
    return getattr(self.net, "progressive", False)

  def compress(self, image: np.ndarray, quality: Optional[int] = None,
               raw: bool = False) -> bytes:
    """uint8 [H, W, 3] (or gray/alpha/16-bit, converted) -> `.tfci` bytes.

    For progressive codecs `quality` is the number of iterations and `raw`
    stores the bits without entropy coding; for the others the quality was
    chosen when loading.
    """
    image, _ = images.as_rgb8(image)
    height, width = image.shape[:2]
    if height * width > self.max_pixels:
      raise CodecError(f"{height}x{width} image exceeds the limit of "
                       f"{self.max_pixels} pixels")
    coder = container.CODER_RAW if raw else container.CODER_RANGE
    if self.progressive:
      iterations = self.net.default_iterations if quality is None else quality
      if not 1 <= iterations <= self.net.max_iterations:
        raise CodecError(f"{self.codec_name} quality (iterations) must be in "
                         f"1..{self.net.max_iterations}, not {iterations}")
      run = self.net.compress_raw if raw else self.net.compress
      payloads = run(tf.constant(image), tf.constant(iterations, tf.int32)).numpy()
    else:
      if raw:
        raise CodecError(f"{self.codec_name} has no raw mode")
      if quality is not None and quality != self.quality:
        raise CodecError(f"load {self.codec_name} with quality {quality} to use it")
      payloads = self.net.compress(tf.constant(image)).numpy()
    return container.serialize(container.Bitstream(
        codec=self.codec_name, fingerprint=self.fingerprint, height=height,
        width=width, payloads=tuple(payloads), coder=coder))

  def parse(self, data: bytes) -> container.Bitstream:
    """Validates a `.tfci` file for this model (progressive files may be cut
    at an iteration boundary)."""
    stream = container.parse(data, self.max_pixels, allow_truncation=self.progressive)
    if stream.codec != self.codec_name or stream.fingerprint != self.fingerprint:
      raise CodecError(
          f"file was made by {stream.codec} model {stream.fingerprint.hex()}, "
          f"not by the loaded {self.codec_name} model {self.fingerprint.hex()}")
    if self.progressive:
      if not stream.payloads or stream.declared_payloads > self.net.max_iterations:
        raise CodecError(f"corrupt or truncated file ({len(stream.payloads)} of "
                         f"{stream.declared_payloads} iterations)")
    elif len(stream.payloads) != self.net.num_payloads or stream.coder != container.CODER_RANGE:
      raise CodecError(f"corrupt file ({len(stream.payloads)} payloads, "
                       f"expected {self.net.num_payloads})")
    return stream

  def decompress(self, data: bytes, iterations: Optional[int] = None) -> np.ndarray:
    """`.tfci` bytes -> uint8 [H, W, 3]; progressive codecs may stop early."""
    stream = self.parse(data)
    payloads = stream.payloads
    run = self.net.decompress
    if self.progressive:
      if iterations is not None:
        if iterations < 1:
          raise CodecError("--iterations must be at least 1")
        payloads = payloads[:iterations]
      if stream.coder == container.CODER_RAW:
        run = self.net.decompress_raw
    elif iterations is not None:
      raise CodecError(f"{self.codec_name} is not progressive (no --iterations)")
    try:
      image = run(tf.constant(payloads, tf.string),
                  tf.constant([stream.height, stream.width], tf.int32))
    except tf.errors.OpError as e:
      raise CodecError(f"corrupt payload ({e.message.splitlines()[0]})") from None
    return image.numpy()


_cache: Dict[str, ImageCodec] = {}


def load(name_or_path: Optional[str] = None,
         quality: Optional[int] = None) -> ImageCodec:
  """Loads a shipped model or a trained model directory (cached)."""
  path = os.path.abspath(zoo.resolve(name_or_path, quality))
  if path not in _cache:
    net, meta = model_dir.load(path)
    _cache[path] = ImageCodec(net, meta, path, zoo.quality_of(path))
  return _cache[path]


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
