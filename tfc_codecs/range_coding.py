"""Range coding with a bounded escape section.

tensorflow-compression's entropy models code a value outside their CDF table
("overflow") as an escape symbol followed, in place, by an Elias-gamma code
whose unary prefix the decoder reads in an unbounded loop: a corrupt payload
that leaves the decoder reading zeros keeps it in that loop forever. This
module drives the same range coder (TFC's `entropy_*_index` ops) with the same
quantized CDF tables, but with overflow switched off (positive precision), so
every decoded symbol is one bounded table search:

    payload = range code of [main symbols..., lengths..., bits...]

  * main symbols: value − offset of its table, or the table's last symbol
    (the escape) if that is outside [0, escape);
  * lengths: for each escape in order, the bit length minus one of its
    magnitude g ≥ 1 (g = −value for negative values, value − escape + 1
    otherwise), coded with a fixed geometric table (the cost of the unary
    prefix of Elias-gamma);
  * bits: for each escape, the bits of g below its leading one (MSB first)
    and its sign, each with probability ½.

The decoder first refuses a payload shorter than the least information its
symbols carry (each symbol costs at least −log2 of its row's largest
probability), then decodes the main symbols, counts the escapes, and refuses a
payload whose escape section could not fit in its bytes (every escape-section
symbol costs at least one bit), so time and memory stay bounded by the number
of symbols and the payload size, whatever the input; and a tiny file cannot
claim a huge image.
"""

from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_compression.python.ops import gen_ops

MAX_LENGTH = 30  # Escaped magnitudes are below 2**MAX_LENGTH.
_SLACK_BITS = 64  # Range-coder bytes not accounted to symbols (start, flush).
_INFORMATION_MARGIN = 0.99  # For float32 sums of per-symbol information bounds.


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


def least_bits(row: np.ndarray) -> float:
  """The fewest bits any symbol of a CDF row costs: −log2 of its largest
  probability. A payload shorter than its symbols' sum of these is corrupt."""
  return float(-np.log2(np.diff(row[1:]).max() / float(1 << abs(int(row[0])))))


def _length_row() -> np.ndarray:
  """16-bit CDF of bit length − 1 = k with probability about 2**−(k+1)."""
  counts = np.array([max(1 << max(15 - k, 0), 1) if k <= 15 else 1
                     for k in range(MAX_LENGTH)], np.int64)
  counts[0] -= counts.sum() - (1 << 16)
  return np.concatenate([[16, 0], np.cumsum(counts)])


class RangeCoder(tf.Module):
  """Codes int32 values, each with its own row of a CDF table, into one string.

  `cdf` and `cdf_offset` are in tensorflow-compression's layout (as its
  entropy models build them and as the model directory stores them); row i
  codes value v as symbol v − cdf_offset[i] (offsets default to 0).
  """

  def __init__(self, cdf: np.ndarray, cdf_offset: Optional[np.ndarray] = None,
               name: str = "range_coder"):
    super().__init__(name=name)
    self.cdf = np.asarray(cdf, np.int32)
    rows = split_rows(self.cdf)
    if cdf_offset is None:
      cdf_offset = np.zeros(len(rows), np.int32)
    self.cdf_offset = np.asarray(cdf_offset, np.int32).reshape(-1)
    if len(rows) != self.cdf_offset.size:
      raise ValueError(f"{len(rows)} CDF rows but {self.cdf_offset.size} offsets")
    self._escape = tf.constant([row.size - 3 for row in rows], tf.int32)
    self._length_index = len(rows)
    self._bit_index = len(rows) + 1
    table = [np.concatenate([[abs(row[0])], row[1:]]) for row in rows]
    table += [_length_row(), np.array([1, 0, 1, 2])]
    self._table = tf.constant(np.concatenate(table), tf.int32)
    self._offset = tf.constant(self.cdf_offset, tf.int32)
    self._least_bits = tf.constant([least_bits(row) for row in rows], tf.float32)

  def encode(self, values: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """int32 values and their row indexes (same shape) -> scalar string."""
    values = tf.reshape(tf.cast(values, tf.int32), [-1])
    indexes = tf.reshape(tf.cast(indexes, tf.int32), [-1])
    symbols = values - tf.gather(self._offset, indexes)
    escape = tf.gather(self._escape, indexes)
    escaped = (symbols < 0) | (symbols >= escape)
    main = tf.where(escaped, escape, symbols)
    negative = tf.boolean_mask(symbols, escaped) < 0
    out = tf.boolean_mask(symbols - escape + 1, escaped)
    magnitude = tf.where(negative, -tf.boolean_mask(symbols, escaped), out)
    tf.debugging.assert_equal(
        (magnitude >= 1) & (magnitude < 1 << MAX_LENGTH), True,
        message=f"values must be within ±2**{MAX_LENGTH} of the table range")
    length = self._bit_length(magnitude)  # 1..MAX_LENGTH
    positions = tf.range(MAX_LENGTH - 1, -1, -1)  # Bit positions, MSB first.
    bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(magnitude[:, None], positions), 1)
    keep = positions[None, :] < length[:, None] - 1  # Below the leading one.
    bits = tf.concat([bits, tf.cast(negative, tf.int32)[:, None]], 1)
    keep = tf.concat([keep, tf.ones_like(keep[:, :1])], 1)
    bits = tf.boolean_mask(bits, keep)
    handle = gen_ops.create_range_encoder([], self._table)
    handle = gen_ops.entropy_encode_index(handle, indexes, main)
    handle = gen_ops.entropy_encode_index(
        handle, tf.fill(tf.shape(length), self._length_index), length - 1)
    handle = gen_ops.entropy_encode_index(
        handle, tf.fill(tf.shape(bits), self._bit_index), bits)
    return gen_ops.entropy_encode_finalize(handle)

  def decode(self, string: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """Inverse of `encode`: int32 values of `indexes`' shape. A corrupt
    payload gives wrong values or an InvalidArgumentError, in bounded time."""
    shape = tf.shape(indexes)
    indexes = tf.reshape(tf.cast(indexes, tf.int32), [-1])
    string = tf.reshape(string, [])
    budget = 8 * tf.strings.length(string) + _SLACK_BITS
    # Refused before any work that scales with the claimed size (a few bytes
    # claiming a huge image would otherwise keep the synthesis busy for minutes).
    least = tf.reduce_sum(tf.gather(self._least_bits, indexes))
    tf.debugging.assert_greater_equal(
        tf.cast(budget, tf.float32), _INFORMATION_MARGIN * least,
        message="shorter than the information its symbols carry")
    handle = gen_ops.create_range_decoder(string, self._table)
    handle, main = gen_ops.entropy_decode_index(handle, indexes, tf.shape(indexes), tf.int32)
    escape = tf.gather(self._escape, indexes)
    escaped = tf.equal(main, escape)
    count = tf.reduce_sum(tf.cast(escaped, tf.int32))
    tf.debugging.assert_less_equal(count, budget, message="too many escapes for its length")
    handle, length = gen_ops.entropy_decode_index(
        handle, tf.fill([count], self._length_index), [count], tf.int32)
    length += 1
    num_bits = tf.reduce_sum(length)  # Bits below the leading ones, plus signs.
    tf.debugging.assert_less_equal(count + num_bits, budget,
                                   message="escape section longer than the payload")
    handle, bits = gen_ops.entropy_decode_index(
        handle, tf.fill([num_bits], self._bit_index), [num_bits], tf.int32)
    tf.debugging.assert_equal(gen_ops.entropy_decode_finalize(handle), True,
                              message="range decoder check failed")
    magnitude, negative = self._read_escapes(bits, length)
    escape_values = tf.where(negative, -magnitude,
                             magnitude + tf.boolean_mask(escape, escaped) - 1)
    symbols = tf.tensor_scatter_nd_update(main, tf.where(escaped), escape_values)
    return tf.reshape(symbols + tf.gather(self._offset, indexes), shape)

  @staticmethod
  def _bit_length(magnitude: tf.Tensor) -> tf.Tensor:
    """Bit length of int32 values in [1, 2**MAX_LENGTH)."""
    shifted = tf.bitwise.right_shift(magnitude[:, None], tf.range(MAX_LENGTH))
    return tf.reduce_sum(tf.cast(shifted > 0, tf.int32), axis=1)

  @staticmethod
  def _read_escapes(bits: tf.Tensor, length: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(magnitudes, is negative) of escapes whose section has `length` bits
    each: the bits below the leading one, MSB first, then the sign."""
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
