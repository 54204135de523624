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

  def __init__(self, net, meta: Dict[str, Any], source: str):
    self.net = net
    self.meta = meta
    self.source = source
    self.fingerprint = bytes.fromhex(meta["fingerprint"])
    self.max_pixels = images.MAX_PIXELS

  @property
  def codec_name(self) -> str:
    return self.net.codec_name

  def compress(self, image: np.ndarray) -> bytes:
    """uint8 [H, W, 3] (or gray/alpha/16-bit, converted) -> `.tfci` bytes."""
    image, _ = images.as_rgb8(image)
    height, width = image.shape[:2]
    if height * width > self.max_pixels:
      raise CodecError(f"{height}x{width} image exceeds the limit of "
                       f"{self.max_pixels} pixels")
    payloads = self.net.compress(tf.constant(image)).numpy()
    return container.serialize(container.Bitstream(
        codec=self.codec_name, fingerprint=self.fingerprint, height=height,
        width=width, payloads=tuple(payloads)))

  def parse(self, data: bytes) -> container.Bitstream:
    """Validates a `.tfci` file for this model."""
    stream = container.parse(data, self.max_pixels)
    if stream.codec != self.codec_name or stream.fingerprint != self.fingerprint:
      raise CodecError(
          f"file was made by {stream.codec} model {stream.fingerprint.hex()}, "
          f"not by the loaded {self.codec_name} model {self.fingerprint.hex()}")
    if len(stream.payloads) != self.net.num_payloads:
      raise CodecError(f"corrupt file ({len(stream.payloads)} payloads, "
                       f"expected {self.net.num_payloads})")
    return stream

  def decompress(self, data: bytes) -> np.ndarray:
    """`.tfci` bytes -> uint8 [H, W, 3]."""
    stream = self.parse(data)
    try:
      image = self.net.decompress(
          tf.constant(stream.payloads, tf.string),
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
    _cache[path] = ImageCodec(net, meta, path)
  return _cache[path]


def load_for(data: bytes, name_or_path: Optional[str] = None) -> ImageCodec:
  """The model that decodes `.tfci` bytes: the given one, else the shipped
  model whose fingerprint the file names."""
  if name_or_path:
    return load(name_or_path)
  stream = container.parse(data, images.MAX_PIXELS)
  entry = zoo.find(stream.fingerprint.hex())
  if entry:
    return load(entry["path"])
  raise CodecError(f"file was made by {stream.codec} model "
                   f"{stream.fingerprint.hex()}, which is not shipped; "
                   "pass it with --model PATH")
