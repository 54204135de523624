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

from typing import Callable, Optional

import numpy as np
import tensorflow as tf
from tensorflow_compression.python.ops import gen_ops

from tfc_codecs.entropy_coding.cdf_tables import least_bits, table_rows
from tfc_codecs.entropy_coding.escapes import (
    MAX_LENGTH, escape_bits, merge_escapes, read_escapes, split_escapes)

_SLACK_BITS = 64  # Range-coder bytes not accounted to symbols (start, flush).
_INFORMATION_MARGIN = 0.99  # For float32 sums of per-symbol information bounds.


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
    self.cdf, rows, self.cdf_offset = table_rows(cdf, cdf_offset)
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
    main, _, magnitude, negative = split_escapes(symbols, tf.gather(self._escape, indexes))
    length, bits = escape_bits(magnitude, negative)  # length: 1..MAX_LENGTH
    handle = gen_ops.create_range_encoder([], self._table)
    handle = gen_ops.entropy_encode_index(handle, indexes, main)
    handle = gen_ops.entropy_encode_index(
        handle, tf.fill(tf.shape(length), self._length_index), length - 1)
    handle = gen_ops.entropy_encode_index(
        handle, tf.fill(tf.shape(bits), self._bit_index), bits)
    return gen_ops.entropy_encode_finalize(handle)

  def encode_chunks(self, values: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """Values and row indexes [chunks, n] -> scalar string that `decode_chunks`
    decodes chunk by chunk (the rows of a chunk may depend on earlier chunks)."""
    return self.encode(values, indexes)

  def decode(self, string: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """Inverse of `encode`: int32 values of `indexes`' shape. A corrupt
    payload gives wrong values or an InvalidArgumentError, in bounded time."""
    shape = tf.shape(indexes)
    indexes = tf.reshape(tf.cast(indexes, tf.int32), [-1])
    string = tf.reshape(string, [])
    # Refused before any work that scales with the claimed size (a few bytes
    # claiming a huge image would otherwise keep the synthesis busy for minutes).
    handle = self._start_decoder(string, tf.reduce_sum(tf.gather(self._least_bits, indexes)))
    handle, main = gen_ops.entropy_decode_index(handle, indexes, tf.shape(indexes), tf.int32)
    values = self._finish_decoder(handle, string, main, indexes)
    return tf.reshape(values, shape)

  def decode_chunks(self, string: tf.Tensor, num_chunks: int, chunk_size: tf.Tensor,
                    chunk_indexes: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """Inverse of `encode_chunks`: int32 values [num_chunks, chunk_size].
    `chunk_indexes(k, decoded)` gives the rows [chunk_size] of chunk k (a
    scalar tensor) from the chunks before it, decoded [k, chunk_size] (a value
    outside its row's table shows there as the row's escape value; contexts
    computed from values clipped to the tables agree on both sides)."""
    string = tf.reshape(string, [])
    least = tf.reduce_min(self._least_bits) * tf.cast(num_chunks * chunk_size, tf.float32)
    handle = self._start_decoder(string, least)
    shape = tf.stack([num_chunks, chunk_size])

    def decode_chunk(k, handle, main, indexes):
      rows = tf.reshape(tf.cast(chunk_indexes(k, (main + tf.gather(self._offset, indexes))[:k]),
                                tf.int32), [chunk_size])
      handle, symbols = gen_ops.entropy_decode_index(handle, rows, [chunk_size], tf.int32)
      return (k + 1, handle, tf.tensor_scatter_nd_update(main, [[k]], symbols[None]),
              tf.tensor_scatter_nd_update(indexes, [[k]], rows[None]))

    _, handle, main, indexes = tf.while_loop(
        lambda k, *_: k < num_chunks, decode_chunk,
        (tf.constant(0), handle, tf.zeros(shape, tf.int32), tf.zeros(shape, tf.int32)))
    values = self._finish_decoder(handle, string, tf.reshape(main, [-1]),
                                  tf.reshape(indexes, [-1]))
    return tf.reshape(values, shape)

  def _start_decoder(self, string, least_bits):
    """A range decoder on `string`, refused if it is shorter than `least_bits`."""
    tf.debugging.assert_greater_equal(
        tf.cast(self._budget(string), tf.float32), _INFORMATION_MARGIN * least_bits,
        message="shorter than the information its symbols carry")
    return gen_ops.create_range_decoder(string, self._table)

  @staticmethod
  def _budget(string):
    return 8 * tf.strings.length(string) + _SLACK_BITS

  def _finish_decoder(self, handle, string, main, indexes):
    """Decodes the escape section after the main symbols [n] of rows
    `indexes` [n], checks the decoder's end; the values [n]."""
    budget = self._budget(string)
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
    magnitude, negative = read_escapes(bits, length)
    symbols = merge_escapes(main, escape, magnitude, negative)
    return symbols + tf.gather(self._offset, indexes)
