"""The `.tfci` container written and read with stock TensorFlow ops.

Exported SavedModels serialize and parse files inside the graph, byte for byte
as `container.serialize` / `container.parse` do (the current format version,
laid out as `container` defines it), so a served model returns exactly what
`tfc_codecs compress` writes. A damaged file fails with an
InvalidArgumentError naming the defect, before any decoding.
"""

import tensorflow as tf

from tfc_codecs import container
from tfc_codecs.entropy_coding.byte_strings import big_endian, byte_values, read_uint, to_string

_ADLER_MOD = 65521
_CODED = {container.CODER_RANGE: "range-coded", container.CODER_STOCK: "stock-coded"}
# The integer fields after the fingerprint: height, width, count, quality.
_NUMBERS = container.FIELDS[container.FORMAT_VERSION][1:]
_LENGTH, _SUM = container.PAYLOAD_LENGTH.size, container.PAYLOAD_SUM.size


def adler32(data: tf.Tensor) -> tf.Tensor:
  """zlib's Adler-32 of a scalar string, as int64."""
  values = byte_values(data)
  length = tf.size(values, tf.int64)
  weights = (length - tf.range(length, dtype=tf.int64)) % _ADLER_MOD
  a = (1 + tf.reduce_sum(values)) % _ADLER_MOD
  b = (length + tf.reduce_sum(values * weights % _ADLER_MOD)) % _ADLER_MOD
  return b * 65536 + a


def serialize(codec_name: str, fingerprint: bytes, height: tf.Tensor, width: tf.Tensor,
              payloads: tf.Tensor, quality: tf.Tensor,
              coder: int = container.CODER_RANGE) -> tf.Tensor:
  """The `.tfci` file (scalar string) of payload strings [K]."""
  values = dict(height=height, width=width, count=tf.size(payloads), quality=quality)
  header = tf.strings.join([
      container.header_start(coder, codec_name, fingerprint),
      to_string(tf.concat([big_endian(values[f.name], f.size) for f in _NUMBERS], 0))])
  parts = tf.TensorArray(tf.string, size=tf.size(payloads))
  for i in tf.range(tf.size(payloads)):
    payload = payloads[i]
    parts = parts.write(i, tf.strings.join([
        to_string(big_endian(tf.strings.length(payload), _LENGTH)), payload,
        to_string(big_endian(adler32(payload), _SUM))]))
  return tf.strings.join([
      header, to_string(big_endian(adler32(header), container.HEADER_SUM.size)),
      tf.strings.reduce_join(parts.stack())])


def _check(condition: tf.Tensor, message: str):
  return tf.debugging.Assert(condition, [tf.constant(f"corrupt .tfci file: {message}")])


def parse(data: tf.Tensor, codec_name: str, fingerprint: bytes, max_pixels: int,
          max_payloads: int, allow_truncation: bool = False,
          coder: int = container.CODER_RANGE):
  """Checks a `.tfci` file made by this model -> (payloads [K], [height, width], quality).

  Only the current format version and entropy coder `coder` are accepted.
  With `allow_truncation`, a file cut at a payload boundary yields the
  payloads before the cut.
  """
  values = byte_values(data)
  size = tf.size(values, tf.int64)
  start = container.header_start(coder, codec_name, fingerprint)
  offsets = container.header_offsets(len(codec_name))
  header_end = offsets[container.HEADER_SUM.name]
  with tf.control_dependencies([_check(size >= offsets["payloads"], "too short")]):
    values = tf.identity(values)
  checks = [
      _check(tf.equal(tf.strings.substr(data, 0, len(start)), start),
             f"not a version {container.FORMAT_VERSION} {_CODED[coder]} file of this "
             f"{codec_name} model"),
      _check(tf.equal(read_uint(values, header_end, container.HEADER_SUM.size),
                      adler32(tf.strings.substr(data, 0, header_end))), "header checksum")]
  height, width, count, quality = (read_uint(values, offsets[f.name], f.size)
                                   for f in _NUMBERS)
  checks += [
      _check((height >= 1) & (width >= 1) & (height * width <= max_pixels),
             f"image size out of range (limit {max_pixels} pixels)"),
      _check((count >= 1) & (count <= max_payloads), "payload count")]
  payloads = tf.TensorArray(tf.string, size=0, dynamic_size=True)
  offset = tf.constant(offsets["payloads"], tf.int64)
  index = tf.constant(0, tf.int64)
  while index < count and (not allow_truncation or offset < size):
    _check(offset + _LENGTH <= size, "truncated")
    length = read_uint(values, offset, _LENGTH)
    end = offset + _LENGTH + length
    _check(end + _SUM <= size, "truncated")
    payload = tf.strings.substr(data, offset + _LENGTH, length)
    _check(tf.equal(read_uint(values, end, _SUM), adler32(payload)), "payload checksum")
    payloads = payloads.write(tf.cast(index, tf.int32), payload)
    offset = end + _SUM
    index += 1
  checks += [_check(tf.equal(offset, size), "unexpected trailing bytes"),
             _check(index >= 1, "no payloads")]
  with tf.control_dependencies(checks):  # Nothing is decoded before these pass.
    return (tf.identity(payloads.stack()), tf.cast(tf.stack([height, width]), tf.int32),
            tf.cast(quality, tf.int32))
