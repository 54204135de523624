"""Values outside their CDF row's table, coded the same way by both coders.

A value outside its row's table is coded as the row's last symbol (the
escape), then, in a section after all main symbols, the bit length of its
magnitude and its bits (`split_escapes` / `merge_escapes`, `escape_bits` /
`read_escapes`). Only stock TensorFlow ops here.
"""

from typing import Tuple

import tensorflow as tf

MAX_LENGTH = 30  # Escaped magnitudes are below 2**MAX_LENGTH.


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
