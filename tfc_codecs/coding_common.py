"""What both entropy coders share: CDF table rows, escapes, bit packing.

`range_coding.RangeCoder` (tensorflow-compression's C++ range coder) and
`stock_coding.StockCoder` (rANS in stock TensorFlow ops) read the same
quantized CDF tables in tensorflow-compression's concatenated layout (rows
`[precision, 0, ..., 2**precision]`, `split_rows`) and code a value outside
its row's table the same way: the row's last symbol (the escape), then, in a
section after all main symbols, the bit length of its magnitude and its bits
(`split_escapes` / `merge_escapes`). Only stock TensorFlow ops here.
"""

from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf

MAX_LENGTH = 30  # Escaped magnitudes are below 2**MAX_LENGTH.
_BYTES = tf.constant([bytes([i]) for i in range(256)])
_BIT_WEIGHTS = tf.constant([128, 64, 32, 16, 8, 4, 2, 1], tf.int32)


def split_rows(cdf: np.ndarray) -> List[np.ndarray]:
  """TFC's concatenated CDF vector -> its rows [precision, 0, ..., 2**precision]
  (trailing padding dropped; the precision's sign is kept)."""
  cdf = np.asarray(cdf, np.int64).reshape(-1)
  rows, start = [], 0
  while start < cdf.size:
    last = 1 << abs(int(cdf[start]))
    end = start + 2
    while cdf[end] != last:
      end += 1
    rows.append(cdf[start:end + 1])
    start = end + 1
    while start < cdf.size and cdf[start] == last:
      start += 1
  return rows


def table_rows(cdf: np.ndarray, cdf_offset: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, List[np.ndarray], np.ndarray]:
  """(int32 cdf, its rows, int32 offsets, one per row; zeros if None) of a
  coder's tables in TFC's layout; ValueError if the counts differ."""
  cdf = np.asarray(cdf, np.int32)
  rows = split_rows(cdf)
  if cdf_offset is None:
    cdf_offset = np.zeros(len(rows), np.int32)
  cdf_offset = np.asarray(cdf_offset, np.int32).reshape(-1)
  if len(rows) != cdf_offset.size:
    raise ValueError(f"{len(rows)} CDF rows but {cdf_offset.size} offsets")
  return cdf, rows, cdf_offset


def least_bits(row: np.ndarray) -> float:
  """The fewest bits any symbol of a CDF row costs: −log2 of its largest
  probability. A payload shorter than its symbols' sum of these is corrupt."""
  return float(-np.log2(np.diff(row[1:]).max() / float(1 << abs(int(row[0])))))


def split_escapes(symbols: tf.Tensor, escape: tf.Tensor):
  """Symbols (value − offset, int32 [n]) and each one's escape symbol (the
  table size) -> (main symbols, escaped mask, magnitudes g ≥ 1 and signs of
  the escaped ones). g = −symbol for negative symbols, symbol − escape + 1
  above the table; checks g < 2**MAX_LENGTH."""
  escaped = (symbols < 0) | (symbols >= escape)
  main = tf.where(escaped, escape, symbols)
  outside = tf.boolean_mask(symbols, escaped)
  negative = outside < 0
  magnitude = tf.where(negative, -outside, outside - tf.boolean_mask(escape, escaped) + 1)
  tf.debugging.assert_equal(
      (magnitude >= 1) & (magnitude < 1 << MAX_LENGTH), True,
      message=f"values must be within ±2**{MAX_LENGTH} of the table range")
  return main, escaped, magnitude, negative


def bit_length(magnitude: tf.Tensor) -> tf.Tensor:
  """Bit length of int32 values in [1, 2**MAX_LENGTH)."""
  shifted = tf.bitwise.right_shift(magnitude[:, None], tf.range(MAX_LENGTH))
  return tf.reduce_sum(tf.cast(shifted > 0, tf.int32), axis=1)


def escape_bits(magnitude: tf.Tensor, negative: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """(bit lengths 1..MAX_LENGTH, the flat {0,1} bits): for each escape the
  bits of its magnitude below the leading one (MSB first), then its sign."""
  length = bit_length(magnitude)
  positions = tf.range(MAX_LENGTH - 1, -1, -1)  # Bit positions, MSB first.
  bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(magnitude[:, None], positions), 1)
  keep = positions[None, :] < length[:, None] - 1  # Below the leading one.
  bits = tf.concat([bits, tf.cast(negative, tf.int32)[:, None]], 1)
  keep = tf.concat([keep, tf.ones_like(keep[:, :1])], 1)
  return length, tf.boolean_mask(bits, keep)


def read_escapes(bits: tf.Tensor, length: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
  """Inverse of `escape_bits`: (magnitudes, is negative) of escapes whose
  section has `length` bits each."""
  row = tf.repeat(tf.range(tf.size(length)), length)
  starts = tf.cumsum(length, exclusive=True)
  position = tf.range(tf.size(bits)) - tf.gather(starts, row)
  exponent = tf.gather(length, row) - 2 - position  # -1 for the sign bit.
  mantissa = tf.math.unsorted_segment_sum(
      tf.where(exponent >= 0, tf.bitwise.left_shift(bits, tf.maximum(exponent, 0)), 0),
      row, tf.size(length))
  magnitude = tf.bitwise.left_shift(tf.ones_like(length), length - 1) + mantissa
  negative = tf.gather(bits, tf.cumsum(length) - 1) > 0
  return magnitude, negative


def merge_escapes(main: tf.Tensor, escape: tf.Tensor, magnitude: tf.Tensor,
                  negative: tf.Tensor) -> tf.Tensor:
  """Inverse of `split_escapes`: decoded main symbols with each escape
  replaced by its value (magnitudes/signs in the order of the escapes)."""
  escaped = tf.equal(main, escape)
  values = tf.where(negative, -magnitude,
                    magnitude + tf.boolean_mask(escape, escaped) - 1)
  return tf.tensor_scatter_nd_update(main, tf.where(escaped), values)


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
