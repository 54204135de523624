"""Entropy coding in stock TensorFlow ops: interleaved rANS over many lanes.

tensorflow-compression's range coder is a custom C++ op, so a SavedModel that
uses it runs only where that op is registered. `StockCoder` codes the same
values with the same quantized CDF tables (tensorflow-compression's layout,
see `coding_common.split_rows`) using only ops every TensorFlow build has:
integer arithmetic on int64 tensors inside one `tf.while_loop`, plus
`tf.searchsorted` for the decoder's symbol lookup. Its interface is
`range_coding.RangeCoder`'s: `encode(values, indexes) -> scalar string`,
`decode(string, indexes) -> values`.

The coder: rANS with a 32-bit state x in [2**16, 2**32) and 16-bit
renormalization, table precision n ≤ 16, so each symbol needs at most one
renormalization step and a whole step is a handful of vector ops. Symbol i
goes to lane i mod L at step i div L; the L lanes are independent rANS
streams advanced together, one symbol each per loop iteration (missing symbols
of the last step are a one-symbol table that leaves the state unchanged). The
encoder runs the steps backwards from the initial state 2**16 and emits the
words of each step in lane order; the decoder runs them forwards, each lane
that renormalizes taking the next word, and must end with every state back
at 2**16 and every word consumed.

Payload (big-endian):
    lanes      u16       L (0 iff there are no symbols)
    words      u32       W
    states     L x u32   the encoder's final states (the decoder's start)
    stream     W x u16   renormalization words, in decoding order
    escapes    bytes     the escape section, bits MSB first, zero-padded

A value outside its row's table is coded as the row's escape symbol (as in
`range_coding`); the escape section then holds, for every escape in order,
its bit length k in unary (k − 1 zeros and a one; the cost of the range
coder's geometric length table), and after all lengths their bits below the
leading one and signs (`coding_common.escape_bits`), one bit each.

Bounds: the decoder checks the header against the payload size and the
symbol count (L ≤ number of symbols, L ≥ symbols / MAX_STEPS, so the loop
runs at most MAX_STEPS times), reads words through clamped indexes, and
refuses an escape section that does not hold the escapes it decoded, so any
input decodes to values of the right shape or fails with an
InvalidArgumentError naming the defect, in time and memory bounded by the
symbol count and the payload size. As in `range_coding`, a payload shorter
than the least information its symbols carry is refused before decoding (a
tiny file cannot claim a huge image).
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from tfc_codecs.coding_common import (
    MAX_LENGTH, big_endian, bits_of, byte_values, escape_bits, least_bits, merge_escapes,
    pack_bits, read_escapes, read_uint, split_escapes, table_rows, to_string)

MAX_PRECISION = 16
MAX_LANES = 4096
MAX_STEPS = 16384  # Loop iterations at most; more symbols take more lanes.
SYMBOLS_PER_LANE_SQUARED = 256  # L = ceil(sqrt(n / 256)): 34 lanes for 295k symbols.
_LOWER = 1 << 16  # State interval [2**16, 2**32).
_ROW_STRIDE = 1 << 17  # Row r's CDF values are offset by r·2**17 in the flat table.
_HEADER = 6
_INFORMATION_MARGIN = 0.99  # For float32 sums of per-symbol information bounds.
_UNROLL = 4  # Steps per loop iteration (the step count is padded to a multiple).


def _stack(array: tf.TensorArray) -> tf.Tensor:
  """The flat concatenation of a TensorArray's equal-size vectors (none: [])."""
  return tf.cond(array.size() > 0, lambda: tf.reshape(array.stack(), [-1]),
                 lambda: tf.zeros([0], array.dtype))


def _grid(lanes, *columns):
  """Flat per-symbol int64 columns -> [steps, lanes] grids, symbol i at
  (i div lanes, i mod lanes), padded with each column's fill value (the
  one-symbol pad row) up to a multiple of _UNROLL steps."""
  count = tf.size(columns[0][0], tf.int64)
  lanes = tf.maximum(lanes, 1)
  steps = (count + lanes - 1) // lanes
  steps = (steps + _UNROLL - 1) // _UNROLL * _UNROLL
  return [tf.reshape(tf.concat([tf.cast(x, tf.int64), tf.fill(
      [steps * lanes - count], tf.constant(fill, tf.int64))], 0), tf.stack([steps, lanes]))
          for x, fill in columns]


def num_lanes(num_symbols: tf.Tensor) -> tf.Tensor:
  """The encoder's lane count for `num_symbols` symbols: about sqrt(n/256),
  which balances the state bytes (about 3 a lane) against the loop
  iterations (n / L), and at least n / MAX_STEPS."""
  n = tf.cast(num_symbols, tf.int64)
  lanes = tf.cast(tf.math.ceil(tf.sqrt(tf.cast(n, tf.float64) / SYMBOLS_PER_LANE_SQUARED)),
                  tf.int64)
  lanes = tf.maximum(lanes, (n + MAX_STEPS - 1) // MAX_STEPS)
  return tf.minimum(lanes, n)


class StockCoder(tf.Module):
  """Codes int32 values, each with its own row of a CDF table, into one
  string, in stock TensorFlow ops (see the module docstring).

  `cdf` and `cdf_offset` are in tensorflow-compression's layout, as for
  `range_coding.RangeCoder`; row precisions must be 1..16.
  """

  def __init__(self, cdf: np.ndarray, cdf_offset: Optional[np.ndarray] = None,
               name: str = "stock_coder"):
    super().__init__(name=name)
    self.cdf, rows, self.cdf_offset = table_rows(cdf, cdf_offset)
    precision, starts, flat = [], [], []
    for r, row in enumerate(rows + [np.array([MAX_PRECISION, 0, 1 << MAX_PRECISION])]):
      bits, values = abs(int(row[0])), row[1:].astype(np.int64)
      if not 1 <= bits <= MAX_PRECISION or values[0] != 0 or np.any(np.diff(values) < 0):
        raise ValueError(f"CDF row {r}: precision must be 1..{MAX_PRECISION} "
                         "and the CDF non-decreasing from 0")
      precision.append(bits)
      starts.append(sum(v.size for v in flat))
      flat.append(values + r * _ROW_STRIDE)
    self._pad_row = len(rows)  # One symbol of probability 1: the state is unchanged.
    self._escape = tf.constant([row.size - 3 for row in rows], tf.int32)
    self._offset = tf.constant(self.cdf_offset, tf.int32)
    self._least_bits = tf.constant([least_bits(row) for row in rows], tf.float32)
    self._precision = tf.constant(precision, tf.int64)
    self._start = tf.constant(starts, tf.int64)
    flat = np.concatenate(flat)
    self._flat = tf.constant(flat, tf.int64)  # Sorted: rows are disjoint.
    self._frequency = tf.constant(np.append(np.diff(flat), 0), tf.int64)  # At a CDF entry.

  # Encoding -------------------------------------------------------------
  @tf.function(reduce_retracing=True)
  def encode(self, values: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """int32 values and their row indexes (same shape) -> scalar string."""
    values = tf.reshape(tf.cast(values, tf.int32), [-1])
    indexes = tf.reshape(tf.cast(indexes, tf.int32), [-1])
    symbols = values - tf.gather(self._offset, indexes)
    main, _, magnitude, negative = split_escapes(symbols, tf.gather(self._escape, indexes))
    length, bits = escape_bits(magnitude, negative)
    position = tf.gather(self._start, indexes) + tf.cast(main, tf.int64)
    base = tf.cast(indexes, tf.int64) * _ROW_STRIDE
    start = tf.gather(self._flat, position) - base
    frequency = tf.gather(self._flat, position + 1) - base - start
    with tf.control_dependencies([tf.debugging.assert_positive(
        frequency, message="a value has probability zero in its CDF table")]):
      frequency = tf.identity(frequency)  # Checked before it divides.
    tf.debugging.assert_less_equal(tf.size(values), MAX_LANES * MAX_STEPS,
                                   message="too many symbols for one payload")
    lanes = num_lanes(tf.size(values))
    states, words = self._encode_lanes(
        start, frequency, tf.gather(self._precision, indexes), lanes)
    header = tf.concat([big_endian(lanes, 2), big_endian(tf.size(words), 4),
                        tf.reshape(big_endian(states, 4), [-1]),
                        tf.reshape(big_endian(words, 2), [-1])], 0)
    unary = tf.scatter_nd(tf.cumsum(length)[:, None] - 1, tf.ones_like(length),
                          tf.reduce_sum(length)[None])
    return tf.strings.join([to_string(header), pack_bits(tf.concat([unary, bits], 0))])

  @staticmethod
  def _encode_lanes(start, frequency, precision, lanes):
    """rANS-encodes the symbols [start, start + frequency) / 2**precision over
    `lanes` lanes -> (final states [lanes], words in decoding order)."""
    start, frequency, precision = _grid(lanes, (start, 0), (frequency, 1 << MAX_PRECISION),
                                        (precision, MAX_PRECISION))
    steps = tf.shape(start)[0]
    limit = tf.bitwise.left_shift(frequency, 32 - precision)  # Renormalize at x >= limit.

    def step(k, x, words, emitted):
      for j in reversed(range(_UNROLL)):
        f, out = frequency[k + j], x >= limit[k + j]
        words = words.write(k + j, tf.bitwise.bitwise_and(x, 0xffff))
        emitted = emitted.write(k + j, out)
        x = tf.where(out, tf.bitwise.right_shift(x, 16), x)
        x = tf.bitwise.left_shift(x // f, precision[k + j]) + x % f + start[k + j]
      return k - _UNROLL, x, words, emitted

    _, states, words, emitted = tf.while_loop(
        lambda k, *_: k >= 0, step,
        (steps - _UNROLL, tf.fill(tf.reshape(lanes, [1]), tf.constant(_LOWER, tf.int64)),
         tf.TensorArray(tf.int64, size=steps), tf.TensorArray(tf.bool, size=steps)))
    return states, tf.boolean_mask(_stack(words), _stack(emitted))

  # Decoding -------------------------------------------------------------
  @tf.function(reduce_retracing=True)
  def decode(self, string: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """Inverse of `encode`: int32 values of `indexes`' shape. A corrupt
    payload gives wrong values or an InvalidArgumentError, in bounded time."""
    shape = tf.shape(indexes)
    indexes = tf.reshape(tf.cast(indexes, tf.int32), [-1])
    data = byte_values(string)
    size = tf.size(data, tf.int64)
    count = tf.size(indexes, tf.int64)
    lanes = read_uint(data, 0, 2)
    num_words = read_uint(data, 2, 4)
    stream_end = _HEADER + 4 * lanes + 2 * num_words
    # Refused before any work that scales with the claimed size: rANS stores
    # at most 16 bits of information in each word and each lane's state.
    least = tf.reduce_sum(tf.gather(self._least_bits, indexes))
    with tf.control_dependencies([tf.debugging.Assert(
        tf.cast(8 * size, tf.float32) >= _INFORMATION_MARGIN * least,
        [tf.constant("shorter than the information its symbols carry")])]):
      check = tf.debugging.Assert(
          (size >= stream_end)
          & tf.where(count > 0, (lanes >= (count + MAX_STEPS - 1) // MAX_STEPS)
                     & (lanes >= 1) & (lanes <= tf.minimum(count, MAX_LANES)),
                     tf.equal(lanes, 0) & tf.equal(num_words, 0)),
          [tf.constant("stock coder header does not fit the payload")])
    with tf.control_dependencies([check]):
      lanes = tf.identity(lanes)
    states = tf.reduce_sum(tf.reshape(data[_HEADER:_HEADER + 4 * lanes], [-1, 4])
                           * tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64), 1)
    words = tf.reduce_sum(tf.reshape(data[_HEADER + 4 * lanes:stream_end], [-1, 2])
                          * tf.constant([256, 1], tf.int64), 1)
    tf.debugging.assert_greater_equal(states, tf.constant(_LOWER, tf.int64),
                                      message="stock coder state out of range")
    main, ok = self._decode_lanes(states, words, indexes, lanes)
    with tf.control_dependencies([tf.debugging.assert_equal(
        ok, True, message="rANS check failed")]):
      main = tf.identity(main)  # The escapes are read only from a checked stream.
    escape = tf.gather(self._escape, indexes)
    magnitude, negative = self._read_section(data[stream_end:], main, escape)
    symbols = merge_escapes(main, escape, magnitude, negative)
    return tf.reshape(symbols + tf.gather(self._offset, indexes), shape)

  def _decode_lanes(self, states, words, indexes, lanes):
    """Main symbols [n] of the rows `indexes`, and whether the lanes ended
    in the encoder's initial state with every word used."""
    count = tf.size(indexes)
    rows, = _grid(lanes, (tf.cast(indexes, tf.int64), self._pad_row))
    base = rows * _ROW_STRIDE
    precision = tf.gather(self._precision, rows)
    mask = tf.bitwise.left_shift(tf.ones_like(precision), precision) - 1
    num_words = tf.size(words)
    words = tf.concat([words, [0]], 0)  # Reads past the end (corrupt input) get 0.
    flat, frequency = self._flat, self._frequency

    def step(k, x, read, positions):
      for j in range(_UNROLL):
        key = tf.bitwise.bitwise_and(x, mask[k + j]) + base[k + j]
        position = tf.searchsorted(flat, key, side="right", out_type=tf.int32) - 1
        x = tf.gather(frequency, position) * tf.bitwise.right_shift(x, precision[k + j]) + (
            key - tf.gather(flat, position))
        need = x < _LOWER
        take = tf.cast(need, tf.int32)
        word = tf.gather(words, tf.minimum(read + tf.cumsum(take, exclusive=True), num_words))
        x = tf.where(need, tf.bitwise.bitwise_or(tf.bitwise.left_shift(x, 16), word), x)
        read += tf.reduce_sum(take)
        positions = positions.write(k + j, position)
      return k + _UNROLL, x, read, positions

    steps = tf.shape(rows)[0]
    _, states, read, positions = tf.while_loop(
        lambda k, *_: k < steps, step,
        (tf.constant(0), states, tf.constant(0), tf.TensorArray(tf.int32, size=steps)))
    positions = _stack(positions)[:count]
    main = positions - tf.cast(tf.gather(self._start, indexes), tf.int32)
    ok = tf.equal(read, num_words) & tf.reduce_all(tf.equal(states, _LOWER))
    return main, ok

  @staticmethod
  def _read_section(section, main, escape):
    """(magnitudes, signs) of the escapes in the escape section's bytes."""
    escaped = tf.equal(main, escape)
    count = tf.reduce_sum(tf.cast(escaped, tf.int32))
    available = 8 * tf.size(section)
    with tf.control_dependencies([tf.debugging.assert_less_equal(
        count, available, message="too many escapes for its length")]):
      bits = bits_of(section)
    ends = tf.cast(tf.where(tf.equal(bits, 1))[:count, 0], tf.int32)  # Unary lengths' ones.
    length = ends - tf.concat([[-1], ends[:-1]], 0)
    lengths_end = tf.reduce_sum(length)
    total = lengths_end + tf.reduce_sum(length)
    with tf.control_dependencies([tf.debugging.Assert(
        tf.equal(tf.size(ends), count) & tf.reduce_all(length <= MAX_LENGTH)
        & tf.equal((total + 7) // 8, tf.size(section)),
        [tf.constant("escape section does not match the payload")])]):
      return read_escapes(bits[lengths_end:total], length)
