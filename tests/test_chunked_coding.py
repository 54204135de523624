"""Chunked coding (`encode_chunks` / `decode_chunks`) of both entropy coders:
each chunk's table rows depend on the chunks decoded before it, as for the
rnn codec's channel-by-channel context model."""


import numpy as np
import pytest
import tensorflow as tf

from tfc_codecs.entropy_coding import cdf_tables, entropy_models, range_coder, stock_coder

from conftest import corrupted_payloads

CHUNKS, SIZE = 5, 700
CODERS = {"range": range_coder.RangeCoder, "stock": stock_coder.StockCoder}


@pytest.fixture(scope="module", params=sorted(CODERS))
def coder(request):
  model = entropy_models.scale_table_model(compression=True)
  return CODERS[request.param](model.cdf.numpy(), model.cdf_offset.numpy())


def chunk_rows(k, decoded):
  """Rows of chunk k from the chunks before it (zero is inside every row, so
  an escaped value counts the same on both sides)."""
  zeros = tf.reduce_sum(tf.cast(tf.equal(decoded, 0), tf.int32), 0)
  return (5 * k + 11 * zeros) % entropy_models.NUM_SCALES


def chunked_symbols(seed, spread):
  """Values [CHUNKS, SIZE] (Gaussian at `spread` times their row's scale) and
  the rows `chunk_rows` gives them."""
  rng = np.random.default_rng(seed)
  values = np.zeros([CHUNKS, SIZE], np.int32)
  rows = np.zeros([CHUNKS, SIZE], np.int32)
  for k in range(CHUNKS):
    rows[k] = chunk_rows(k, tf.constant(values[:k])).numpy()
    scales = entropy_models._scale_fn(rows[k].astype(np.float32)).numpy()  # pylint: disable=protected-access
    values[k] = np.round(rng.normal(size=SIZE) * scales * spread)
  return values, rows


@pytest.mark.parametrize("spread", [1., 4.])  # 4: many escapes.
def test_chunks_round_trip_inside_tf_function(coder, spread):
  values, rows = chunked_symbols(1, spread)
  string = coder.encode_chunks(values, rows)
  decode = tf.function(lambda s: coder.decode_chunks(s, CHUNKS, tf.constant(SIZE), chunk_rows))
  np.testing.assert_array_equal(decode(string).numpy(), values)
  # The chunked payload costs what one flat payload of the same symbols does.
  flat = coder.encode(values, rows).numpy()
  assert len(string.numpy()) <= len(flat) + 4


def test_rows_that_disagree_with_the_encoder_fail_or_differ(coder):
  values, rows = chunked_symbols(2, 1.)
  string = coder.encode_chunks(values, rows)
  shifted = lambda k, decoded: (chunk_rows(k, decoded) + 1) % entropy_models.NUM_SCALES
  try:
    decoded = coder.decode_chunks(string, CHUNKS, tf.constant(SIZE), shifted).numpy()
  except tf.errors.InvalidArgumentError:
    return
  assert not np.array_equal(decoded, values)


def test_corrupt_chunked_payloads_decode_or_fail_cleanly(coder):
  """Random bytes, flipped bits, cut payloads: values of the right shape or an
  InvalidArgumentError, never a hang."""
  values, rows = chunked_symbols(3, 2.)
  good = coder.encode_chunks(values, rows).numpy()
  decode = tf.function(lambda s: coder.decode_chunks(s, CHUNKS, tf.constant(SIZE), chunk_rows))
  decode(tf.constant(good))  # Traced once.
  outcomes = {"decoded": 0, "error": 0}
  for data in corrupted_payloads(good, 4, 30):
    try:
      decoded = decode(tf.constant(data)).numpy()
      assert decoded.shape == (CHUNKS, SIZE) and decoded.dtype == np.int32
      outcomes["decoded"] += 1
    except tf.errors.InvalidArgumentError:
      outcomes["error"] += 1
  assert outcomes["error"] >= 10, outcomes  # Range: about a third; rANS: all.
