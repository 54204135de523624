"""Entropy coding in stock TensorFlow ops: interleaved rANS over many lanes.

tensorflow-compression's range coder is a custom C++ op, so a SavedModel that
uses it runs only where that op is registered. `StockCoder` codes the same
values with the same quantized CDF tables (tensorflow-compression's layout,
see `cdf_tables.split_rows`) using only ops every TensorFlow build has:
integer arithmetic on int64 tensors inside one `tf.while_loop`, plus
`tf.searchsorted` for the decoder's symbol lookup. Its interface is
`range_coder.RangeCoder`'s: `encode(values, indexes) -> scalar string`,
`decode(string, indexes) -> values`.

The coder: rANS with a 32-bit state x in [2**16, 2**32) and 16-bit
renormalization, table precision n ≤ 16, so each symbol needs at most one
renormalization step and a whole step is a handful of vector ops (shifts and
masks are constants when all rows share a precision). Symbol i goes to lane
i mod L at step i div L; the L lanes are independent rANS streams advanced
together, one symbol each per loop iteration (missing symbols of the last
step are a one-symbol table that leaves the state unchanged). The encoder
runs the steps backwards from the initial state 2**16 and emits the words of
each step in lane order; the decoder runs them forwards, each lane that
renormalizes taking the next word, and must end with every state back at
2**16.

Payload:
    states     the L final states of the encoder (the decoder's start), bit
               packed MSB first: L 4-bit lengths l (x in [2**(16+l),
               2**(17+l))), then each state's 16 + l bits below its leading
               one; zero-padded to a byte
    stream     u16 words (big-endian), in decoding order
    escapes    bytes     the escape section, bits MSB first, zero-padded

No counts are stored: L is `num_lanes` of the symbol count, which the decoder
knows, and the stream ends where the decoder stops reading words. A lane
costs about 20 bits more than its symbols' information: the initial state's
16 bits and the length field.

A value outside its row's table is coded as the row's escape symbol (as in
`range_coder`); the escape section then holds, for every escape in order,
its bit length k in unary (k − 1 zeros and a one; the cost of the range
coder's geometric length table), and after all lengths their bits below the
leading one and signs (`escapes.escape_bits`), one bit each.

Bounds: L ≥ symbols / MAX_STEPS, so the loop runs at most MAX_STEPS times;
the decoder reads words through clamped indexes, checks that it read no more
than the payload holds, and
refuses an escape section that does not hold the escapes it decoded, so any
input decodes to values of the right shape or fails with an
InvalidArgumentError naming the defect, in time and memory bounded by the
symbol count and the payload size. As in `range_coder`, a payload shorter
than the least information its symbols carry is refused before decoding (a
tiny file cannot claim a huge image).
"""

from typing import Callable, Optional

import numpy as np
import tensorflow as tf

from tfc_codecs.entropy_coding.byte_strings import (
    big_endian, bits_of, byte_values, pack_bits, to_string)
from tfc_codecs.entropy_coding.cdf_tables import least_bits, table_rows
from tfc_codecs.entropy_coding.escapes import (
    MAX_LENGTH, escape_bits, merge_escapes, read_escapes, split_escapes)

MAX_PRECISION = 16
MAX_LANES = 4096
MAX_STEPS = 16384  # Loop iterations at most; more symbols take more lanes.
SYMBOLS_PER_LANE_SQUARED = 256  # L = ceil(sqrt(n / 256)): 34 lanes for 295k symbols.
_ROW_STRIDE = 1 << 17  # Row r's CDF values are offset by r·2**17 in the flat table.
_LOWER_BITS = 16  # State interval [2**16, 2**32).
_STATE_BITS = 4 + _LOWER_BITS + 15  # A packed state's most bits.
_INFORMATION_MARGIN = 0.99  # For float32 sums of per-symbol information bounds.
_UNROLL = 8  # Steps per loop iteration (the step count is padded to a multiple).


def _stack(array: tf.TensorArray) -> tf.Tensor:
  """The flat concatenation of a TensorArray's equal-size vectors (none: [])."""
  return tf.cond(array.size() > 0, lambda: tf.reshape(array.stack(), [-1]),
                 lambda: tf.zeros([0], array.dtype))


def _grid(lanes, *columns, chunks=1):
  """Flat per-symbol int64 columns -> [steps, lanes] grids, symbol i at
  (i div lanes, i mod lanes), padded with each column's fill value (the
  one-symbol pad row) up to a multiple of _UNROLL steps. With `chunks`, the
  columns are that many equal chunks, each gridded so and stacked in order
  (a chunk's symbols all decode after the chunks before it)."""
  chunks = tf.cast(chunks, tf.int64)
  chunk_size = tf.size(columns[0][0], tf.int64) // chunks
  lanes = tf.maximum(lanes, 1)
  steps = (chunk_size + lanes - 1) // lanes
  steps = (steps + _UNROLL - 1) // _UNROLL * _UNROLL
  padding = [[0, 0], [0, steps * lanes - chunk_size]]
  return [tf.reshape(tf.pad(tf.reshape(tf.cast(x, tf.int64), tf.stack([chunks, chunk_size])),
                            padding, constant_values=fill), tf.stack([chunks * steps, lanes]))
          for x, fill in columns]


def _state_bits(states: tf.Tensor) -> tf.Tensor:
  """Final states [L] in [2**16, 2**32) -> the {0,1} bits of the payload's
  state section (module docstring), before padding."""
  length = tf.reduce_sum(tf.cast(tf.bitwise.right_shift(
      states[:, None], tf.range(17, 32, dtype=tf.int64)) > 0, tf.int64), 1)
  length_bits = tf.bitwise.bitwise_and(
      tf.bitwise.right_shift(length[:, None], tf.constant([3, 2, 1, 0], tf.int64)), 1)
  positions = tf.range(31, -1, -1, dtype=tf.int64)
  body = tf.bitwise.bitwise_and(tf.bitwise.right_shift(states[:, None], positions), 1)
  below_leading_one = positions[None] < _LOWER_BITS + length[:, None]
  return tf.concat([tf.reshape(length_bits, [-1]), tf.boolean_mask(body, below_leading_one)], 0)


def _read_states(data: tf.Tensor, lanes: tf.Tensor):
  """Inverse of `_state_bits`, from the payload's byte values: (states [L],
  the byte where the state section ends). Bits past the payload read as 0;
  the caller checks the end against the size."""
  num_bytes = (_STATE_BITS * lanes + 7) // 8
  head = tf.cast(bits_of(data[:num_bytes]), tf.int64)
  head = tf.pad(head, [[0, 8 * num_bytes - tf.size(head, tf.int64)]])
  length = tf.reduce_sum(tf.reshape(head[:4 * lanes], [-1, 4])
                         * tf.constant([8, 4, 2, 1], tf.int64), 1)
  body = _LOWER_BITS + length
  start = 4 * lanes + tf.cumsum(body, exclusive=True)
  positions = tf.range(31, dtype=tf.int64)  # MSB first.
  inside = positions[None] < body[:, None]
  bits = tf.gather(head, tf.where(inside, start[:, None] + positions[None], 0))
  shift = tf.maximum(body[:, None] - 1 - positions[None], 0)
  states = tf.bitwise.left_shift(tf.ones_like(body), body) + tf.reduce_sum(
      tf.where(inside, tf.bitwise.left_shift(bits, shift), 0), 1)
  return states, (4 * lanes + tf.reduce_sum(body) + 7) // 8


def num_lanes(num_symbols: tf.Tensor) -> tf.Tensor:
  """The encoder's lane count for `num_symbols` symbols: about sqrt(n/256),
  which balances the cost of a lane (about 20 bits over the information of
  its symbols) against the loop iterations (n / L), and at least
  n / MAX_STEPS."""
  n = tf.cast(num_symbols, tf.int64)
  lanes = tf.cast(tf.math.ceil(tf.sqrt(tf.cast(n, tf.float64) / SYMBOLS_PER_LANE_SQUARED)),
                  tf.int64)
  lanes = tf.maximum(lanes, (n + MAX_STEPS - 1) // MAX_STEPS)
  return tf.minimum(lanes, n)


class StockCoder(tf.Module):
  """Codes int32 values, each with its own row of a CDF table, into one
  string, in stock TensorFlow ops (see the module docstring).

  `cdf` and `cdf_offset` are in tensorflow-compression's layout, as for
  `range_coder.RangeCoder`; row precisions must be 1..16.
  """

  def __init__(self, cdf: np.ndarray, cdf_offset: Optional[np.ndarray] = None,
               name: str = "stock_coder"):
    super().__init__(name=name)
    self.cdf, rows, self.cdf_offset = table_rows(cdf, cdf_offset)
    precision, starts, flat = [], [], []
    pad = self._pad_precision = max([abs(int(row[0])) for row in rows], default=MAX_PRECISION)
    for r, row in enumerate(rows + [np.array([pad, 0, 1 << pad])]):
      bits, values = abs(int(row[0])), row[1:].astype(np.int64)
      if not 1 <= bits <= MAX_PRECISION or values[0] != 0 or np.any(np.diff(values) < 0):
        raise ValueError(f"CDF row {r}: precision must be 1..{MAX_PRECISION} "
                         "and the CDF non-decreasing from 0")
      precision.append(bits)
      starts.append(sum(v.size for v in flat))
      flat.append(values + r * _ROW_STRIDE)
    self._pad_row = len(rows)  # One symbol of probability 1: the state is unchanged.
    self._uniform_precision = precision[0] if len(set(precision)) == 1 else None
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
    return self._encode(values, indexes, chunks=1)

  @tf.function(reduce_retracing=True)
  def encode_chunks(self, values: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """Values and row indexes [chunks, n] -> scalar string that `decode_chunks`
    decodes chunk by chunk (the rows of a chunk may depend on earlier chunks)."""
    return self._encode(values, indexes, chunks=tf.shape(indexes)[0])

  def _encode(self, values, indexes, chunks):
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
    pad = self._pad_precision
    grids = _grid(lanes, (start, 0), (frequency, 1 << pad),
                  (tf.gather(self._precision, indexes), pad), chunks=chunks)
    states, words = self._encode_lanes(*grids, lanes)
    unary = tf.scatter_nd(tf.cumsum(length)[:, None] - 1, tf.ones_like(length),
                          tf.reduce_sum(length)[None])
    return tf.strings.join([pack_bits(_state_bits(states)),
                            to_string(tf.reshape(big_endian(words, 2), [-1])),
                            pack_bits(tf.concat([unary, bits], 0))])

  def _encode_lanes(self, start, frequency, precision, lanes):
    """rANS-encodes the symbols [start, start + frequency) / 2**precision,
    grids [steps, lanes] -> (final states [lanes], words in decoding order)."""
    steps = tf.shape(start)[0]
    # Renormalize at x >= limit, so that x stays below 2**(_LOWER_BITS + 16).
    limit = tf.bitwise.left_shift(frequency, _LOWER_BITS + 16 - precision)
    shift = ((lambda _: self._uniform_precision) if self._uniform_precision
             else precision.__getitem__)

    def step(k, x, words):
      for j in reversed(range(_UNROLL)):
        f, out = frequency[k + j], x >= limit[k + j]
        words = words.write(k + j, tf.where(out, tf.bitwise.bitwise_and(x, 0xffff), -1))
        x = tf.where(out, tf.bitwise.right_shift(x, 16), x)
        x = tf.bitwise.left_shift(x // f, shift(k + j)) + x % f + start[k + j]
      return k - _UNROLL, x, words

    _, states, words = tf.while_loop(
        lambda k, *_: k >= 0, step,
        (steps - _UNROLL, tf.fill(tf.reshape(lanes, [1]), tf.constant(1 << _LOWER_BITS, tf.int64)),
         tf.TensorArray(tf.int64, size=steps)))
    words = _stack(words)  # -1 where a lane emitted no word.
    return states, tf.boolean_mask(words, words >= 0)

  # Decoding -------------------------------------------------------------
  @tf.function(reduce_retracing=True)
  def decode(self, string: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """Inverse of `encode`: int32 values of `indexes`' shape. A corrupt
    payload gives wrong values or an InvalidArgumentError, in bounded time."""
    shape = tf.shape(indexes)
    indexes = tf.reshape(tf.cast(indexes, tf.int32), [-1])
    count = tf.size(indexes)
    stream, states, lanes = self._start_decoder(
        string, count, tf.reduce_sum(tf.gather(self._least_bits, indexes)))
    words, num_words = self._words(stream)
    rows, = _grid(lanes, (indexes, self._pad_row))
    positions, states, read = self._decode_steps(states, 0, words, num_words, rows)
    main = positions[:count] - tf.cast(tf.gather(self._start, indexes), tf.int32)
    values = self._finish_decoder(stream, main, indexes, states, read, num_words)
    return tf.reshape(values, shape)

  def decode_chunks(self, string: tf.Tensor, num_chunks: int, chunk_size: tf.Tensor,
                    chunk_indexes: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """Inverse of `encode_chunks`: int32 values [num_chunks, chunk_size].
    `chunk_indexes(k, decoded)` gives the rows [chunk_size] of chunk k (a
    scalar tensor) from the chunks before it, decoded [k, chunk_size] (a value
    outside its row's table shows there as the row's escape value; contexts
    computed from values clipped to the tables agree on both sides)."""
    count = num_chunks * chunk_size
    least = tf.reduce_min(self._least_bits) * tf.cast(count, tf.float32)
    stream, states, lanes = self._start_decoder(string, count, least)
    words, num_words = self._words(stream)
    shape = tf.stack([num_chunks, chunk_size])

    def decode_chunk(k, states, read, main, indexes):
      rows = tf.reshape(tf.cast(chunk_indexes(k, (main + tf.gather(self._offset, indexes))[:k]),
                                tf.int32), [chunk_size])
      grid, = _grid(lanes, (rows, self._pad_row))
      positions, states, read = self._decode_steps(states, read, words, num_words, grid)
      symbols = positions[:chunk_size] - tf.cast(tf.gather(self._start, rows), tf.int32)
      return (k + 1, states, read, tf.tensor_scatter_nd_update(main, [[k]], symbols[None]),
              tf.tensor_scatter_nd_update(indexes, [[k]], rows[None]))

    _, states, read, main, indexes = tf.while_loop(
        lambda k, *_: k < num_chunks, decode_chunk,
        (tf.constant(0), states, tf.constant(0), tf.zeros(shape, tf.int32),
         tf.zeros(shape, tf.int32)))
    values = self._finish_decoder(stream, tf.reshape(main, [-1]), tf.reshape(indexes, [-1]),
                                  states, read, num_words)
    return tf.reshape(values, shape)

  def _start_decoder(self, string, count, least_bits):
    """(stream after the states, lane states, lanes) of a payload of
    `count` symbols; refused if it is shorter than `least_bits`."""
    data = byte_values(string)
    size = tf.size(data, tf.int64)
    count = tf.cast(count, tf.int64)
    # Refused before any work that scales with the symbol count: rANS stores
    # at most 16 bits of information in each word and each lane's state.
    check = tf.debugging.Assert(
        tf.cast(8 * size, tf.float32) >= _INFORMATION_MARGIN * least_bits,
        [tf.constant("shorter than the information its symbols carry")])
    with tf.control_dependencies([check, tf.debugging.assert_less_equal(
        count, tf.constant(MAX_LANES * MAX_STEPS, tf.int64),
        message="too many symbols for one payload")]):
      lanes = num_lanes(count)
    states, states_end = _read_states(data, lanes)
    with tf.control_dependencies([tf.debugging.assert_less_equal(
        states_end, size, message="stock coder states run past the payload")]):
      stream = data[states_end:]
    return stream, states, lanes

  @staticmethod
  def _words(stream):
    """The u16 words of the stream (plus a 0 read past the end), and their count."""
    words = tf.reduce_sum(tf.reshape(stream[:tf.size(stream) // 2 * 2], [-1, 2])
                          * tf.constant([256, 1], tf.int64), 1)
    return tf.concat([words, [0]], 0), tf.size(words)

  def _finish_decoder(self, stream, main, indexes, states, read, num_words):
    """Checks the lanes' end and decodes the escape section; the values [n]."""
    ok = (read <= num_words) & tf.reduce_all(tf.equal(states, 1 << _LOWER_BITS))
    with tf.control_dependencies([tf.debugging.assert_equal(
        ok, True, message="rANS check failed")]):
      main = tf.identity(main)  # The escapes are read only from a checked stream.
    escape = tf.gather(self._escape, indexes)
    magnitude, negative = self._read_section(stream[2 * read:], main, escape)
    symbols = merge_escapes(main, escape, magnitude, negative)
    return symbols + tf.gather(self._offset, indexes)

  def _decode_steps(self, states, read, words, num_words, rows):
    """Decodes the steps of a row grid [steps, lanes] from lane states having
    read `read` words -> (flat table positions [steps * lanes], states, read)."""
    rows = tf.cast(rows, tf.int64)
    base = rows * _ROW_STRIDE
    if self._uniform_precision:  # Shifts and masks are constants.
      precision = lambda _: self._uniform_precision
      mask = lambda _: (1 << self._uniform_precision) - 1
    else:
      precision_grid = tf.gather(self._precision, rows)
      mask_grid = tf.bitwise.left_shift(tf.ones_like(precision_grid), precision_grid) - 1
      precision, mask = precision_grid.__getitem__, mask_grid.__getitem__
    # The row position p of a key: flat[p] <= key < flat[p + 1] (flat[0] = 0).
    flat, upper, frequency = self._flat, self._flat[1:], self._frequency
    lower = tf.constant(1 << _LOWER_BITS, tf.int64)

    def step(k, x, read, positions):
      for j in range(_UNROLL):
        key = tf.bitwise.bitwise_and(x, mask(k + j)) + base[k + j]
        position = tf.searchsorted(upper, key, side="right", out_type=tf.int32)
        x = tf.gather(frequency, position) * tf.bitwise.right_shift(x, precision(k + j)) + (
            key - tf.gather(flat, position))
        need = x < lower
        take = tf.cast(need, tf.int32)
        # Reads past the end (corrupt input) get the trailing 0.
        word = tf.gather(words, tf.minimum(read + tf.cumsum(take, exclusive=True), num_words))
        x = tf.where(need, tf.bitwise.bitwise_or(tf.bitwise.left_shift(x, 16), word), x)
        read += tf.reduce_sum(take)
        positions = positions.write(k + j, position)
      return k + _UNROLL, x, read, positions

    steps = tf.shape(rows)[0]
    _, states, read, positions = tf.while_loop(
        lambda k, *_: k < steps, step,
        (tf.constant(0), states, tf.convert_to_tensor(read), tf.TensorArray(tf.int32, size=steps)))
    return _stack(positions), states, read

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
