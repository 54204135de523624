"""SavedModel export for TF Serving and for other TensorFlow programs.

`export(model, export_base)` writes `EXPORT_BASE/<model_name>/<version>/`, a
SavedModel whose functions carry the whole codec: image decoding, padding,
transforms, range coding and the `.tfci` container (`graph_container`), so a
served model returns exactly the bytes `tfc_codecs compress` writes. TF
Serving conventions: a leading batch dimension on every input and output, and
binary tensors named `*_bytes`.

Signatures:
  serving_default  image_bytes string [N] (PNG/JPEG)   -> bitstream_bytes string [N]
  compress         image_bytes string [N] (+ quality)  -> bitstream_bytes string [N]
  compress_image   image uint8 [1, H, W, 3] (+ quality) -> bitstream_bytes string [1]
  decompress       bitstream_bytes string [N]           -> png_bytes string [N]
  decompress_image bitstream_bytes string [1]           -> image uint8 [1, H, W, 3]
`quality` (int32, one per image; for rnn the number of iterations) exists for
models that take one (`contract.RateKind`) and is optional: `serving_default`
has only `image_bytes`, so TF Serving's REST API accepts a request naming only
the image (it wants every input of a signature), and compresses at the model's
default quality; `compress` and `compress_image` record that default in their
SignatureDefs (an empty `quality` for `compress`), which gRPC, `saved_model_cli
run` and `tf.saved_model.load(path).compress_image(image)` let a caller omit.
`compress`, `compress_image`, `decompress` and `decompress_image` are
attributes of `tf.saved_model.load(path)`.

`ops` picks the entropy coder inside the graphs. "stock" (the default):
rANS in stock TensorFlow ops (`entropy_coding.stock_coder`, container coder 5), so the
export has no custom op at all and runs on an unmodified
tensorflow_model_server or any TensorFlow runtime; it reads stock-coded files.
"tfc": tensorflow-compression's range coder (coder 3), a custom op: a process
must `import tensorflow_compression` before loading, and a stock
tensorflow_model_server cannot run these graphs.
"""

import json
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

import tensorflow as tf

from tfc_codecs import api, container, exported_codec, graph_container, shipped_exports, zoo
from tfc_codecs.contract import RateKind
from tfc_codecs.errors import CodecError
from tfc_codecs.exported_codec import INFO_FILE

MODELS_CONFIG = "models.config"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ExportModule(tf.Module):
  """The exported functions of one loaded model."""

  def __init__(self, codec: api.ImageCodec):
    super().__init__(name="tfc_codecs_export")
    self.net = codec.net
    self._codec_name = codec.codec_name
    self._fingerprint = codec.fingerprint
    self._rate_kind = codec.rate_kind
    self._default_quality = codec.default_quality
    self._num_qualities = codec.num_qualities
    self._max_pixels = codec.max_pixels
    self._max_payloads = (codec.num_qualities if self._rate_kind is RateKind.PROGRESSIVE
                          else codec.net.num_payloads)
    self._coder = container.CODER_OF_OPS[codec.ops]
    batch = tf.TensorSpec([None], tf.string, name="image_bytes")
    image = tf.TensorSpec([1, None, None, 3], tf.uint8, name="image")
    files = tf.TensorSpec([None], tf.string, name="bitstream_bytes")
    one_file = tf.TensorSpec([1], tf.string, name="bitstream_bytes")
    self.serving_default = tf.function(self._compress_batch, input_signature=[batch])
    if self._rate_kind.takes_quality:
      def compress(image_bytes, quality=tf.zeros([0], tf.int32)):
        return self._compress_batch(image_bytes, quality)

      def compress_image(image, quality=tf.constant([self._default_quality])):
        return self._compress_image(image, quality)

      self.compress = tf.function(compress, input_signature=[
          batch, tf.TensorSpec([None], tf.int32, name="quality")])
      self.compress_image = tf.function(compress_image, input_signature=[
          image, tf.TensorSpec([1], tf.int32, name="quality")])
    else:
      self.compress = self.serving_default
      self.compress_image = tf.function(self._compress_image, input_signature=[image])
    self.decompress = tf.function(self._decompress_batch, input_signature=[files])
    self.decompress_image = tf.function(self._decompress_image, input_signature=[one_file])

  def signatures(self) -> Dict[str, Any]:
    return {"serving_default": self.serving_default, "compress": self.compress,
            "compress_image": self.compress_image, "decompress": self.decompress,
            "decompress_image": self.decompress_image}

  # Compression ------------------------------------------------------------
  def _check_quality(self, quality):
    """`quality`, once checked: the check runs before anything that uses it
    (an out-of-range index would otherwise fail first, with another message)."""
    check = tf.debugging.Assert((quality >= 1) & (quality <= self._num_qualities), [
        tf.constant(f"quality must be in 1..{self._num_qualities}"), quality])
    with tf.control_dependencies([check]):
      return tf.identity(quality)

  def _compress_one(self, image, quality):
    """uint8 [H, W, 3] -> `.tfci` file bytes."""
    if self._rate_kind.takes_quality:
      payloads = self.net.compress(image, self._check_quality(quality))
    else:
      payloads = self.net.compress(image)
    shape = tf.shape(image)
    return graph_container.serialize(self._codec_name, self._fingerprint, shape[0],
                                     shape[1], payloads, quality, self._coder)

  def _decode_image(self, data):
    """PNG/JPEG bytes -> uint8 [H, W, 3], as `images.decode_image` converts
    them (16-bit rounded, alpha dropped, gray expanded); sizes are checked
    against the pixel limit before decoding."""
    is_png = tf.equal(tf.strings.substr(data, 0, 8), _PNG_MAGIC)
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 2), b"\xff\xd8")
    is_image = tf.debugging.Assert(is_png | is_jpeg,
                                   [tf.constant("image_bytes must be PNG or JPEG")])

    def png_size():
      values = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8), tf.int64)
      weights = tf.constant([2 ** 24, 2 ** 16, 2 ** 8, 1], tf.int64)
      return tf.stack([tf.reduce_sum(values[4:8] * weights),
                       tf.reduce_sum(values[:4] * weights)])

    with tf.control_dependencies([is_image]):
      size = tf.cond(is_png, png_size,
                     lambda: tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64))
    with tf.control_dependencies([tf.debugging.Assert(
        size[0] * size[1] <= self._max_pixels,
        [tf.constant(f"image exceeds the limit of {self._max_pixels} pixels")])]):
      data = tf.identity(data)

    def png():
      wide = tf.cast(tf.io.decode_png(data, channels=0, dtype=tf.uint16), tf.int32)
      return tf.cast((wide + 128) // 257, tf.uint8)

    decoded = tf.cond(is_png, png, lambda: tf.io.decode_jpeg(data, channels=0))
    channels = tf.gather([[0, 0, 0], [0, 0, 0], [0, 1, 2], [0, 1, 2]],
                         tf.shape(decoded)[2] - 1)
    return tf.gather(decoded, channels, axis=2)

  def _compress_batch(self, image_bytes, quality=None):
    """Images at `quality` (empty or None: the default quality)."""
    default = tf.fill(tf.shape(image_bytes), self._default_quality)
    if quality is not None:
      quality = tf.cond(tf.size(quality) > 0, lambda: quality, lambda: default)
    files = tf.map_fn(lambda args: self._compress_one(self._decode_image(args[0]), args[1]),
                      (image_bytes, default if quality is None else quality),
                      fn_output_signature=tf.string)
    return {"bitstream_bytes": files}

  def _compress_image(self, image, quality=None):
    quality = tf.constant([self._default_quality]) if quality is None else quality
    return {"bitstream_bytes": self._compress_one(image[0], quality[0])[None]}

  # Decompression ----------------------------------------------------------
  def _decompress_one(self, data):
    """`.tfci` file bytes made by this model -> uint8 [H, W, 3]."""
    payloads, shape, quality = graph_container.parse(
        data, self._codec_name, self._fingerprint, self._max_pixels,
        self._max_payloads, allow_truncation=self._rate_kind is RateKind.PROGRESSIVE,
        coder=self._coder)
    if self._rate_kind is not RateKind.PROGRESSIVE:
      tf.debugging.assert_equal(tf.size(payloads), self._max_payloads,
                                message="corrupt .tfci file: payload count")
    if self._rate_kind is RateKind.VARIABLE:
      return self.net.decompress(payloads, shape, self._check_quality(quality))
    return self.net.decompress(payloads, shape)

  def _decompress_batch(self, bitstream_bytes):
    pngs = tf.map_fn(lambda data: tf.io.encode_png(self._decompress_one(data)),
                     bitstream_bytes, fn_output_signature=tf.string)
    return {"png_bytes": pngs}

  def _decompress_image(self, bitstream_bytes):
    return {"image": self._decompress_one(bitstream_bytes[0])[None]}


def _next_version(model_base: str) -> int:
  versions = [int(v) for v in os.listdir(model_base) if v.isdigit()] if os.path.isdir(
      model_base) else []
  return max(versions, default=0) + 1


def write_models_config(export_base: str) -> str:
  """Writes EXPORT_BASE/models.config (tensorflow_model_server's
  --model_config_file) listing every exported model under EXPORT_BASE."""
  entries = []
  for name in sorted(os.listdir(export_base)):
    base = os.path.join(os.path.abspath(export_base), name)
    if os.path.isdir(base) and any(v.isdigit() for v in os.listdir(base)):
      entries.append(f'  config {{\n    name: "{name}"\n    base_path: "{base}"\n'
                     f'    model_platform: "tensorflow"\n  }}\n')
  path = os.path.join(export_base, MODELS_CONFIG)
  with open(path + ".tmp", "w") as f:
    f.write("model_config_list {\n" + "".join(entries) + "}\n")
  os.replace(path + ".tmp", path)
  return path


def _save(codec: api.ImageCodec, directory: str) -> None:
  """Writes the SavedModel of `codec` and its `INFO_FILE` to `directory`."""
  module = ExportModule(codec)
  tf.saved_model.save(module, directory, signatures=module.signatures())
  os.makedirs(os.path.join(directory, "assets.extra"), exist_ok=True)
  with open(os.path.join(directory, INFO_FILE), "w") as f:
    json.dump(dict(codec=codec.codec_name, fingerprint=codec.fingerprint.hex(),
                   quality=codec.quality, num_qualities=codec.num_qualities,
                   default_quality=codec.default_quality,
                   progressive=codec.rate_kind is RateKind.PROGRESSIVE,
                   source=codec.source, ops=codec.ops,
                   format_version=container.FORMAT_VERSION), f, indent=2)


def export(model: Optional[str], export_base: str, version: Optional[int] = None,
           model_name: Optional[str] = None, quality: Optional[int] = None,
           ops: str = "stock") -> str:
  """Exports a shipped or trained model with entropy coder `ops` ("stock" or
  "tfc", see the module docstring); returns the version directory. A shipped
  model's stock export is the one it ships (`shipped_exports`): no
  tensorflow-compression needed."""
  if model and exported_codec.is_export(model):
    raise CodecError(f"{model} is an export already; export its model directory")
  if version is not None and version < 1:
    raise CodecError(f"--version must be a positive integer, not {version}")
  path = os.path.abspath(zoo.resolve(model, quality))
  shipped = ops == "stock" and shipped_exports.export_dir(path) is not None
  codec = None if shipped else api.build(path, ops)
  if model_name:
    name = model_name
  elif model in zoo.family_names() or model is None:
    family = model or zoo.DEFAULT_MODEL
    rate_point = zoo.quality_of(path)
    name = f"{family}-q{rate_point}" if rate_point else family
  else:
    name = os.path.basename(os.path.normpath(path))
  model_base = os.path.join(export_base, name)
  version = version or _next_version(model_base)
  target = os.path.join(model_base, str(version))
  if os.path.exists(target):
    raise CodecError(f"{target} exists (versions are never overwritten; omit "
                     "--version for the next free one)")
  os.makedirs(model_base, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".tmp-export-", dir=model_base)
  try:
    if shipped:
      shipped_exports.materialize(path, os.path.join(staging, "model"))
    else:
      _save(codec, os.path.join(staging, "model"))
    os.chmod(os.path.join(staging, "model"), 0o755)
    os.replace(os.path.join(staging, "model"), target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  write_models_config(export_base)
  return target


def write_shipped_export(model_path: str) -> str:
  """(Re)writes `stock_export/` beside the weights of model directory
  `model_path` (see `shipped_exports`); returns its path."""
  codec = api.build(os.path.abspath(model_path), "stock")
  with tempfile.TemporaryDirectory() as scratch:
    _save(codec, os.path.join(scratch, "model"))
    return shipped_exports.store(os.path.join(scratch, "model"), model_path)
