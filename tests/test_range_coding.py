"""The range coder with a bounded escape section (tfc_codecs/entropy_coding/range_coder.py)."""

import numpy as np
import pytest
import tensorflow as tf

from tfc_codecs.entropy_coding import cdf_tables, entropy_models, range_coder

from conftest import corrupted_payloads, random_symbols


@pytest.fixture(scope="module")
def scale_model():
  return entropy_models.scale_table_model(compression=True)


@pytest.fixture(scope="module")
def coder(scale_model):
  return range_coder.RangeCoder(scale_model.cdf.numpy(), scale_model.cdf_offset.numpy())


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_with_escapes(coder, seed):
  values, indexes = random_symbols(seed, 5000, spread=3.)
  values[:6] = [1000, -1000, 2 ** 29, -(2 ** 30 - 1), 0, 2 ** 30 - 1]
  escapes = np.sum(values != np.clip(values, *_table_range(coder, indexes)))
  assert escapes > 6
  string = coder.encode(values, indexes)
  np.testing.assert_array_equal(coder.decode(string, indexes).numpy(), values)


def _table_range(coder, indexes):
  offsets = coder.cdf_offset[indexes]
  escape = np.array([r.size - 3 for r in cdf_tables.split_rows(coder.cdf)])[indexes]
  return offsets, offsets + escape - 1


def test_rate_matches_tfc_overflow_coding(coder, scale_model):
  """Same tables, same range coder: escapes cost what TFC's in-place
  Elias-gamma codes cost (within a few bytes), and without escapes the bytes
  are TFC's exactly."""
  values, indexes = random_symbols(0, 20000, spread=1.5)
  ours = coder.encode(values, indexes).numpy()
  tfc = scale_model.compress(tf.constant(values, tf.float32),
                             tf.constant(indexes, tf.float32)).numpy()
  assert abs(len(ours) - len(tfc)) <= 4
  inside = np.clip(values, *_table_range(coder, indexes))
  ours = coder.encode(inside, indexes).numpy()
  tfc = scale_model.compress(tf.constant(inside, tf.float32),
                             tf.constant(indexes, tf.float32)).numpy()
  assert ours == tfc


def test_empty_and_single_symbol(coder):
  empty = np.zeros([0], np.int32)
  assert coder.decode(coder.encode(empty, empty), empty).numpy().size == 0
  for value in (0, 5, -7, 100000):
    one = np.array([value], np.int32)
    index = np.array([3], np.int32)
    assert coder.decode(coder.encode(one, index), index).numpy().tolist() == [value]


def test_round_trip_inside_tf_function(coder):
  values, indexes = random_symbols(1, 3000, spread=3.)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)] * 2)
  def round_trip(values, indexes):
    return coder.decode(coder.encode(values, indexes), indexes)

  np.testing.assert_array_equal(round_trip(values, indexes).numpy(), values)


def test_out_of_range_values_are_refused(coder):
  index = np.array([0], np.int32)
  with pytest.raises(tf.errors.InvalidArgumentError, match="within"):
    coder.encode(np.array([2 ** 31 - 1], np.int32), index)


def test_corrupt_payloads_decode_or_fail_cleanly(coder):
  """Random bytes, and valid payloads with bytes flipped or cut, decode to
  int32 values or fail with InvalidArgumentError (how long they take:
  tests/stress/fuzz_decoder.py)."""
  values, indexes = random_symbols(2, 4000, spread=3.)
  good = coder.encode(values, indexes).numpy()
  outcomes = {"decoded": 0, "error": 0}
  for data in corrupted_payloads(good, 3, 150):
    try:
      decoded = coder.decode(tf.constant(data), indexes).numpy()
      assert decoded.shape == indexes.shape and decoded.dtype == np.int32
      outcomes["decoded"] += 1
    except tf.errors.InvalidArgumentError:
      outcomes["error"] += 1
  assert outcomes["decoded"] and outcomes["error"]


def test_escape_flood_is_refused_before_allocation():
  """A table whose escape symbol is likely makes junk decode mostly escapes;
  an escape section that cannot fit in the payload's bits is an error."""
  cdf = np.array([-16, 0, 1, 65536], np.int32)  # Symbol 0: 2**-16, escape: the rest.
  coder = range_coder.RangeCoder(cdf, np.zeros([1], np.int32))
  indexes = np.zeros([100000], np.int32)
  with pytest.raises(tf.errors.InvalidArgumentError, match="too many escapes"):
    coder.decode(tf.constant(b"\x12\x34"), indexes)


def test_payload_shorter_than_its_information_is_refused(coder):
  """A few bytes cannot hold many symbols of rows whose likeliest symbol still
  costs bits: refused before decoding (a tiny file claiming a huge image)."""
  values, indexes = random_symbols(5, 2000, spread=3.)
  good = coder.encode(values, indexes)
  np.testing.assert_array_equal(coder.decode(good, indexes).numpy(), values)
  many = np.tile(indexes, 50)
  least = sum(cdf_tables.least_bits(r) for r in cdf_tables.split_rows(coder.cdf)[:1])
  assert least > 0
  with pytest.raises(tf.errors.InvalidArgumentError, match="shorter than the information"):
    coder.decode(good, many)
