"""The codec API: `load(name_or_path)` -> `ImageCodec` with compress/decompress.

A name is a shipped model family from `tfc_codecs/zoo/` (with an optional
quality); a path is a model directory written by `tfc_codecs train`. `ops`
picks the entropy coder of compress: "tfc" (tensorflow-compression's range
coder, coder 3) or "stock" (rANS in stock TensorFlow ops, coder 5, see
entropy_coding/stock_coder.py); decompress reads either, whatever `ops` was loaded.
"""

import os
import threading
from typing import Any, Callable, Dict, Optional

import numpy as np
import tensorflow as tf

from tfc_codecs import (container, exported_codec, images, model_dir, shipped_exports,
                        tfc_stack, traced_cache, zoo)
from tfc_codecs.contract import LoadedCodec, RateKind, cut_progressive
from tfc_codecs.errors import CodecError, op_error_message


class ImageCodec:
  """A loaded, frozen model: uint8 RGB images <-> `.tfci` bytes (a
  `contract.LoadedCodec`).

  With a `cache_entry` (see `traced_cache`), compress/decompress run the entry's
  cached traced functions, and a function not yet cached is traced on a
  private copy of the model (`net`, or built from `source` if None) and
  saved there; once the model is exposed through `.net` (which may then be
  changed), its own functions run and nothing more is cached. `ops` is the
  entropy coder of compress (`net`'s, if given).
  """

  def __init__(self, net, meta: Dict[str, Any], source: str,
               quality: Optional[int] = None, ops: str = "tfc",
               cache_entry: Optional[str] = None,
               spec: Optional[Dict[str, Any]] = None, max_pixels: int = images.MAX_PIXELS):
    self._net = net
    self._ops = net.ops if net is not None else ops
    self._exposed = cache_entry is None
    self._entry = cache_entry
    self._functions: Dict[str, Callable] = {}
    self._lock = threading.Lock()
    self._spec = spec or {key: getattr(net, key) for key in traced_cache.CODEC_ATTRIBUTES
                          if hasattr(net, key)}
    self.quality = quality
    self.meta = meta
    self.source = source
    self.fingerprint = bytes.fromhex(meta["fingerprint"])
    self.max_pixels = max_pixels  # Images and `.tfci` headers with more are refused.

  @property
  def net(self):
    """The codec model (built on first access)."""
    with self._lock:
      self._exposed = True
      return self._model()

  def _model(self):
    if self._net is None:
      self._net, _ = model_dir.load(self.source, self._ops)
    return self._net

  def _run(self, name: str, *args):
    """Calls the model's function `name`: the cached one while the model is
    private, tracing and caching it on first use if needed."""
    with self._lock:
      if self._exposed:
        function, save = getattr(self._model(), name), False
      elif name in self._functions:
        function, save = self._functions[name], False
      else:
        function = traced_cache.load_function(self._entry, name)
        save = function is None
        if save:
          function = getattr(self._model(), name)
        self._functions[name] = function
    result = function(*args)
    if save:
      with self._lock:
        if not self._exposed:
          traced_cache.save_function(self._entry, self._net, name)
    return result

  def _decode(self, stream: container.Bitstream, name: str, payloads: tf.Tensor,
              *extra: tf.Tensor) -> np.ndarray:
    """Runs decoding function `name` (payloads, image shape, *extra) of the
    model; an op that fails means a corrupt payload."""
    try:
      result = self._run(name, payloads, tf.constant([stream.height, stream.width], tf.int32),
                         *extra)
    except tf.errors.OpError as e:
      raise CodecError(f"corrupt payload ({op_error_message(e.message)})") from None
    return result.numpy()

  @property
  def codec_name(self) -> str:
    return self._spec["codec_name"]

  @property
  def ops(self) -> str:
    """The entropy coder of compress: "tfc" or "stock"."""
    return self._ops

  def _codec_for(self, coder: int) -> LoadedCodec:
    """The loaded codec that decodes payloads of entropy coder `coder`."""
    ops = container.OPS_OF_CODER.get(coder, self.ops)
    return self if ops == self.ops else load(self.source, self.quality, ops=ops,
                                             max_pixels=self.max_pixels)

  @property
  def rate_kind(self) -> RateKind:
    return RateKind.of(self._spec["num_qualities"], self._spec["progressive"])

  @property
  def progressive(self) -> bool:
    """Shorthand: `rate_kind` is PROGRESSIVE (quality = iterations, rnn)."""
    return self.rate_kind is RateKind.PROGRESSIVE

  @property
  def num_qualities(self) -> int:
    """Qualities 1..n that this one model offers; 0 for a fixed-rate model."""
    return self._spec["num_qualities"]

  @property
  def default_quality(self) -> int:
    """The quality compress uses when given none."""
    if self.rate_kind.takes_quality:
      return self._spec["default_quality"]
    return self.quality or 0

  @property
  def num_payloads(self) -> int:
    """Payload strings per file (fixed-rate and variable-rate models)."""
    return self._spec["num_payloads"]

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
    if self.rate_kind.takes_quality:
      quality = self.default_quality if quality is None else quality
      self._check_quality(quality)
      payloads = self._run("compress_raw" if raw else "compress", tf.constant(image),
                           tf.constant(quality, tf.int32)).numpy()
    else:
      if quality is not None and quality != self.quality:
        raise CodecError(f"load {self.codec_name} with quality {quality} to use it")
      payloads = self._run("compress", tf.constant(image)).numpy()
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
    if (len(stream.payloads) != self.num_payloads
        or stream.coder not in container.OPS_OF_CODER):
      raise CodecError(f"corrupt file ({len(stream.payloads)} payloads, "
                       f"expected {self.num_payloads})")
    if self.rate_kind is RateKind.VARIABLE and not 1 <= stream.quality <= self.num_qualities:
      raise CodecError(f"corrupt header (quality {stream.quality} is not in "
                       f"1..{self.num_qualities})")
    return stream

  def decompress(self, data: bytes, iterations: Optional[int] = None) -> np.ndarray:
    """`.tfci` bytes -> uint8 [H, W, 3]; progressive codecs may stop early."""
    stream = self.parse(data)
    if iterations is not None and not self.progressive:
      raise CodecError(f"{self.codec_name} is not progressive (no --iterations)")
    other = self._codec_for(stream.coder)
    if other is not self:
      return other.decompress(data, iterations)
    if self.progressive:
      if iterations is not None:
        stream = cut_progressive(stream, iterations)
      return self._decode(stream, "decompress_raw" if stream.coder == container.CODER_RAW
                          else "decompress", tf.constant(stream.payloads, tf.string))
    payloads = tf.constant(stream.payloads, tf.string)
    if self.rate_kind is RateKind.VARIABLE:
      return self._decode(stream, "decompress", payloads,
                          tf.constant(stream.quality, tf.int32))
    return self._decode(stream, "decompress", payloads)

  def decompress_steps(self, data: bytes) -> np.ndarray:
    """A progressive codec's image after each iteration of an entropy-coded
    file (either coder), uint8 [K, H, W, 3]: step k equals
    `decompress(data, iterations=k)`."""
    stream = self.parse(data)
    if not self.progressive or stream.coder not in container.OPS_OF_CODER:
      raise CodecError("decompress_steps needs a range-coded or stock-coded file of a "
                       "progressive codec")
    other = self._codec_for(stream.coder)
    if other is not self:
      return other.decompress_steps(data)
    return self._decode(stream, "decompress_steps", tf.constant(stream.payloads, tf.string))


_cache: Dict[tuple, ImageCodec] = {}
_cache_lock = threading.Lock()  # Batch compression loads from worker threads.


def load(name_or_path: Optional[str] = None,
         quality: Optional[int] = None, ops: Optional[str] = None,
         max_pixels: int = images.MAX_PIXELS) -> LoadedCodec:
  """Loads a shipped model, a trained model directory or a SavedModel export
  (cached) as a `contract.LoadedCodec`.

  `ops` is the entropy coder its compress uses: "tfc" (needs
  tensorflow-compression) or "stock"; None: `tfc_stack.default_ops()`. A
  shipped model with "stock" runs its stock-op export (`shipped_exports`, an
  `exported_codec.ExportedCodec`), never importing tensorflow_compression;
  anything else builds the model from its weights (an `ImageCodec`, which needs
  it). Images and files of more than `max_pixels` pixels are refused.
  """
  if name_or_path and exported_codec.is_export(name_or_path):
    return exported_codec.ExportedCodec(name_or_path, max_pixels)
  ops = ops or tfc_stack.default_ops()
  if ops not in container.CODER_OF_OPS:
    raise CodecError(f"ops must be one of {', '.join(container.CODER_OF_OPS)}, not {ops!r}")
  path = os.path.abspath(zoo.resolve(name_or_path, quality))
  if ops == "stock" and shipped_exports.export_dir(path):
    key = (path, "export", max_pixels)
    with _cache_lock:
      if key not in _cache:
        _cache[key] = exported_codec.ExportedCodec(shipped_exports.saved_model_dir(path),
                                                   max_pixels, source=path)
      return _cache[key]
  return build(path, ops, max_pixels)


def build(path: str, ops: str, max_pixels: int = images.MAX_PIXELS) -> ImageCodec:
  """The model of directory `path` built from its weights (cached), whose
  compress uses entropy coder `ops`; needs tensorflow-compression."""
  if ops == "tfc":
    tfc_stack.require("--ops tfc (tensorflow-compression's range coder)")
  tfc_stack.require(f"building {path} from its weights (only the shipped models have "
                    "stock-op exports)")
  key = _cache_key(path) + (ops, max_pixels)
  with _cache_lock:
    return _load_cached(key, path, ops, max_pixels)


def _load_cached(key: tuple, path: str, ops: str, max_pixels: int) -> ImageCodec:
  if key not in _cache:
    meta = model_dir.read_meta(path)
    entry = traced_cache.entry_dir(meta["fingerprint"], ops)
    spec = entry and traced_cache.read_spec(entry)
    net = None
    if not spec:  # Not cached yet: build (and check) the model now.
      net, meta = model_dir.load(path, ops)
    _cache[key] = ImageCodec(net, meta, path, zoo.quality_of(path), ops, entry, spec,
                             max_pixels)
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


def load_for(data: bytes, name_or_path: Optional[str] = None,
             max_pixels: int = images.MAX_PIXELS) -> LoadedCodec:
  """The model that decodes `.tfci` bytes: the given one, else the shipped
  (or retired) model whose fingerprint the file names; loaded for the file's
  entropy coder."""
  stream = container.parse(data, max_pixels, allow_truncation=True)
  ops = container.OPS_OF_CODER.get(stream.coder)
  if ops != "stock":
    tfc_stack.require("decoding a file made with --ops tfc (tensorflow-compression's range "
                      "coder)" if ops == "tfc" else "decoding an rnn --raw file")
  if not name_or_path:
    entry = zoo.find(stream.fingerprint.hex())  # The model then checks the cut.
    if not entry:
      raise CodecError(f"file was made by {stream.codec} model "
                       f"{stream.fingerprint.hex()}, which is not shipped; "
                       "pass it with --model PATH")
    name_or_path = entry["path"]
  return load(name_or_path, ops=ops or "tfc", max_pixels=max_pixels)
