"""The stock-op rANS coder (tfc_codecs/entropy_coding/stock_coder.py): exact round trips on
random tables and streams (property-based), escapes, edge sizes, its rate
next to the range coder's, and corrupt payloads refused cleanly."""

import re

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tfc_codecs.entropy_coding import cdf_tables, entropy_models, range_coder, stock_coder
from tfc_codecs.entropy_coding.escapes import MAX_LENGTH

from conftest import corrupted_payloads, random_symbols

DEFECTS = ("states run past the payload|rANS check failed|too many escapes|"
           "escape section does not match|shorter than the information")
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True)  # A new coder traces anew.


@pytest.fixture(scope="module")
def tables():
  model = entropy_models.scale_table_model(compression=True)
  return model.cdf.numpy(), model.cdf_offset.numpy()


@pytest.fixture(scope="module")
def coder(tables):
  return stock_coder.StockCoder(*tables)


def round_trip(coder, values, indexes):
  string = coder.encode(values, indexes)
  np.testing.assert_array_equal(coder.decode(string, indexes).numpy(), values)
  return string.numpy()


@st.composite
def random_cdf_tables(draw):
  """1..4 rows of random precision 1..16 and 1..12 symbols of positive
  frequency (the last one is the escape), with offsets. A precision equal to
  the previous row's last value would read as padding (`cdf_tables.split_rows`)."""
  rows, offsets = [], []
  for _ in range(draw(st.integers(1, 4))):
    size = draw(st.integers(1, 12))
    previous_last = rows[-1][-1] if rows else None
    precision = draw(st.integers(max(1, int(np.ceil(np.log2(size)))), 16).filter(
        lambda p, last=previous_last: p != last))
    cuts = sorted(draw(st.sets(st.integers(1, (1 << precision) - 1),
                               min_size=size - 1, max_size=size - 1)))
    rows.append([precision, 0] + cuts + [1 << precision])
    offsets.append(draw(st.integers(-20, 20)))
  return np.concatenate(rows).astype(np.int32), np.array(offsets, np.int32)


@pytest.mark.slow  # > 10 s.
@SETTINGS
@given(table=random_cdf_tables(), data=st.data())
def test_random_tables_round_trip(table, data):
  cdf, offsets = table
  coder = stock_coder.StockCoder(cdf, offsets)
  size = data.draw(st.integers(0, 3000))
  seed = data.draw(st.integers(0, 2 ** 32 - 1))
  rng = np.random.default_rng(seed)
  indexes = rng.integers(0, offsets.size, size).astype(np.int32)
  spread = [row.size - 2 for row in cdf_tables.split_rows(cdf)]
  values = offsets[indexes] + np.round(
      rng.normal(size=size) * np.take(spread, indexes)).astype(np.int32)
  round_trip(coder, values, indexes)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(values=st.lists(st.integers(-(2 ** 30) + 1, 2 ** 30 - 1), max_size=300),
       seed=st.integers(0, 2 ** 32 - 1))
def test_random_streams_round_trip(coder, values, seed):
  indexes = np.random.default_rng(seed).integers(
      0, entropy_models.NUM_SCALES, len(values)).astype(np.int32)
  round_trip(coder, np.array(values, np.int32), indexes)


@pytest.mark.parametrize("seed", range(3))
def test_round_trip_with_escapes_is_deterministic(coder, seed):
  values, indexes = random_symbols(seed, 20000, spread=3.)
  values[:6] = [1000, -1000, 2 ** 29, -(2 ** 30 - 1), 0, 2 ** 30 - 1]
  string = round_trip(coder, values, indexes)
  assert coder.encode(values, indexes).numpy() == string


def test_empty_and_single_symbol(coder):
  empty = np.zeros([0], np.int32)
  assert round_trip(coder, empty, empty) == b""
  for value in (0, 5, -7, 100000, -(2 ** 30 - 1)):
    round_trip(coder, np.array([value], np.int32), np.array([3], np.int32))
  # A 2-d shape comes back as it went in.
  values, indexes = random_symbols(4, 60)
  decoded = coder.decode(coder.encode(values, indexes), indexes.reshape(6, 10))
  np.testing.assert_array_equal(decoded.numpy(), values.reshape(6, 10))


def test_rate_is_close_to_the_range_coder(coder, tables):
  """Same tables: the stock payload is the range coder's plus about 20 bits
  a lane (the initial state and the packed final state's length), no
  header."""
  reference = range_coder.RangeCoder(*tables)
  for seed, size, spread in ((0, 20000, 1.5), (1, 300000, 1.), (2, 20000, 3.)):
    values, indexes = random_symbols(seed, size, spread)
    ours = len(round_trip(coder, values, indexes))
    theirs = len(reference.encode(values, indexes).numpy())
    lanes = int(stock_coder.num_lanes(size))
    assert theirs < ours <= theirs * 1.002 + 3 * lanes, (size, ours, theirs, lanes)


def test_lanes_bound_the_loop():
  for count, lanes in ((0, 0), (1, 1), (256, 1), (257, 2), (294912, 34)):
    assert int(stock_coder.num_lanes(count)) == lanes
  huge = 10 ** 9
  assert int(stock_coder.num_lanes(huge)) * stock_coder.MAX_STEPS >= huge


def test_bad_tables_and_values_are_refused(coder):
  with pytest.raises(ValueError, match="precision"):
    stock_coder.StockCoder(np.array([17, 0, 1 << 16, 1 << 17], np.int32))
  zero = stock_coder.StockCoder(np.array([4, 0, 0, 16], np.int32))  # Symbol 0: p = 0.
  with pytest.raises(tf.errors.InvalidArgumentError, match="probability zero"):
    zero.encode(np.array([0], np.int32), np.array([0], np.int32))
  round_trip(zero, np.array([1, 5, -3], np.int32), np.zeros([3], np.int32))  # Escapes.
  with pytest.raises(tf.errors.InvalidArgumentError, match="within"):
    coder.encode(np.array([2 ** 31 - 1], np.int32), np.array([0], np.int32))


def decode_outcome(coder, data, indexes):
  """"decoded" or "error", checking shape and dtype."""
  try:
    decoded = coder.decode(tf.constant(data), indexes).numpy()
    assert decoded.shape == indexes.shape and decoded.dtype == np.int32
    outcome = "decoded"
  except tf.errors.InvalidArgumentError as e:
    assert re.search(DEFECTS, e.message), e.message
    outcome = "error"
  return outcome


def test_corrupt_payloads_decode_or_fail_cleanly(coder):
  """Random bytes, flipped bits, cut payloads: int32 values of the right
  shape or an InvalidArgumentError naming the defect, never a hang."""
  values, indexes = random_symbols(2, 4000, spread=3.)
  good = coder.encode(values, indexes).numpy()
  outcomes = {"decoded": 0, "error": 0}
  for data in corrupted_payloads(good, 3, 60):
    outcomes[decode_outcome(coder, data, indexes)] += 1
  assert outcomes["error"] > 30


def test_lying_payloads_are_refused(coder):
  values, indexes = random_symbols(5, 5000)
  good = coder.encode(values, indexes).numpy()
  with pytest.raises(tf.errors.InvalidArgumentError, match="shorter than the information"):
    coder.decode(tf.constant(good), np.tile(indexes, 50))  # A small file, a big image.
  assert decode_outcome(coder, good + b"\x00", indexes) == "error"  # Escape section.
  # A likely symbol (no information bound): state lengths of all ones claim
  # more state bits than the payload has.
  certain = stock_coder.StockCoder(np.array([16, 0, 65535, 65536], np.int32))
  zeros = np.zeros([300], np.int32)
  assert round_trip(certain, zeros, zeros) != b"\xff"
  with pytest.raises(tf.errors.InvalidArgumentError, match="states run past the payload"):
    certain.decode(tf.constant(b"\xff"), zeros)


def test_more_symbols_than_a_payload_holds_are_refused():
  """Past MAX_LANES lanes of MAX_STEPS symbols, even a payload long enough for
  their information (a near-certain symbol carries almost none) is refused."""
  certain = stock_coder.StockCoder(np.array([16, 0, 65535, 65536], np.int32))
  indexes = np.zeros([stock_coder.MAX_LANES * stock_coder.MAX_STEPS + 1], np.int32)
  with pytest.raises(tf.errors.InvalidArgumentError, match="too many symbols"):
    certain.decode(tf.constant(b"\x5a" * 65536), indexes)


@pytest.mark.slow  # > 10 s.
def test_escape_flood_is_refused_before_allocation():
  """A table whose escape is likely: a payload whose escape section cannot
  hold the escapes its rANS stream decodes is an error, not a big allocation."""
  coder = stock_coder.StockCoder(np.array([-16, 0, 1, 65536], np.int32))
  indexes = np.zeros([100000], np.int32)
  good = round_trip(coder, np.ones([100000], np.int32), indexes)  # All escapes.
  with pytest.raises(tf.errors.InvalidArgumentError, match="too many escapes"):
    coder.decode(tf.constant(good[:-20000]), indexes)
  junk = bytes([0x12, 0x34, 0x56, 0x78]) * 40 + b"\xff" * 8
  with pytest.raises(tf.errors.InvalidArgumentError, match="rANS check failed"):
    coder.decode(tf.constant(junk), indexes)
  values = np.zeros([1000], np.int32) + (1 << (MAX_LENGTH - 1))
  round_trip(coder, values, np.zeros([1000], np.int32))  # Long escapes work.


@pytest.mark.slow  # > 10 s.
@pytest.mark.parametrize("name,quality", [("hyperprior_vr", 2), ("channelwise_vr", 2), ("rnn", 3)])
def test_codecs_round_trip_with_either_coder(name, quality, photo, repo_root):
  """load(..., ops="stock") writes coder-5 files of the same model; both
  loads decode both coders' files to the same image. (factorized, hyperprior
  and rnn are also checked against their stock exports in test_export.py.)"""
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  from tfc_codecs import container  # pylint: disable=import-outside-toplevel
  path = str(repo_root / "testdata" / "models" / f"{name}_tiny")
  range_codec, stock_codec = tfc_codecs.load(path), tfc_codecs.load(path, ops="stock")
  assert stock_codec.fingerprint == range_codec.fingerprint and stock_codec.ops == "stock"
  files = {ops: codec.compress(photo, quality)
           for ops, codec in (("tfc", range_codec), ("stock", stock_codec))}
  assert [container.parse(f, 1 << 20).coder for f in files.values()] == [
      container.CODER_RANGE, container.CODER_STOCK]
  reference = range_codec.decompress(files["tfc"])
  for codec in (range_codec, stock_codec):
    for data in files.values():
      np.testing.assert_array_equal(codec.decompress(data), reference)
  if range_codec.progressive:  # Cut stock files decode like cut range-coded ones.
    np.testing.assert_array_equal(stock_codec.decompress(files["stock"], iterations=1),
                                  range_codec.decompress(files["tfc"], iterations=1))
    np.testing.assert_array_equal(range_codec.decompress_steps(files["stock"]),
                                  range_codec.decompress_steps(files["tfc"]))
