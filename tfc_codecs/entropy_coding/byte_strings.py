"""Byte and bit strings in stock TensorFlow ops: scalar strings <-> byte
values, big-endian integers, and bits packed 8 per byte (MSB first).

Used by the stock coder, the rnn's raw-bits payloads and the `.tfci`
container in TF ops (`graph_container`).
"""

import tensorflow as tf

_BYTES = tf.constant([bytes([i]) for i in range(256)])
_BIT_WEIGHTS = tf.constant([128, 64, 32, 16, 8, 4, 2, 1], tf.int32)


def to_string(byte_values: tf.Tensor) -> tf.Tensor:
  """int [n] byte values 0..255 -> scalar string."""
  return tf.strings.reduce_join(tf.gather(_BYTES, tf.cast(byte_values, tf.int32)))


def byte_values(data: tf.Tensor) -> tf.Tensor:
  """Scalar string -> int64 [len] byte values."""
  return tf.cast(tf.io.decode_raw(tf.reshape(data, [1]), tf.uint8)[0], tf.int64)


def big_endian(value: tf.Tensor, num_bytes: int) -> tf.Tensor:
  """Unsigned integers (any shape) -> their `num_bytes` big-endian byte values
  (int64, a new last axis of size `num_bytes`)."""
  value = tf.cast(value, tf.int64)[..., None]
  shifts = tf.constant([8 * i for i in reversed(range(num_bytes))], tf.int64)
  return tf.bitwise.bitwise_and(tf.bitwise.right_shift(value, shifts), 255)


def read_uint(values: tf.Tensor, offset, num_bytes: int) -> tf.Tensor:
  """Big-endian unsigned integer at `offset` of int64 byte values (bytes past
  the end read as zero; the callers' checks then fail)."""
  chunk = values[offset:offset + num_bytes]
  chunk = tf.pad(chunk, [[0, num_bytes - tf.size(chunk)]])
  weights = tf.constant([256 ** i for i in reversed(range(num_bytes))], tf.int64)
  return tf.reduce_sum(chunk * weights)


def pack_bits(bits01: tf.Tensor) -> tf.Tensor:
  """A {0,1} int tensor -> scalar string of its bits, 8 per byte, MSB first."""
  flat = tf.reshape(tf.cast(bits01, tf.int32), [-1])
  flat = tf.pad(flat, [[0, (8 - tf.size(flat) % 8) % 8]])
  return to_string(tf.reduce_sum(tf.reshape(flat, [-1, 8]) * _BIT_WEIGHTS, axis=1))


def bits_of(values: tf.Tensor) -> tf.Tensor:
  """Byte values [n] -> int32 [8·n] of their bits, MSB first."""
  values = tf.cast(values, tf.int32)
  bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(values[:, None], tf.range(7, -1, -1)), 1)
  return tf.reshape(bits, [-1])


def unpack_bits(string: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
  """Inverse of `pack_bits`; fails if the string has the wrong length."""
  count = tf.reduce_prod(shape)
  tf.debugging.assert_equal(tf.strings.length(string), (count + 7) // 8,
                            message="raw payload has the wrong length")
  return tf.reshape(bits_of(byte_values(string))[:count], shape)
