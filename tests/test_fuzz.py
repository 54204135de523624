"""Short run of the decoder fuzzer (tests/stress/fuzz_decoder.py) and replay of
its regression corpus (testdata/fuzz_corpus/)."""

import os
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "stress"))
import fuzz_decoder  # pylint: disable=wrong-import-position

pytestmark = pytest.mark.slow  # Fuzzing.

INPUTS_PER_CODEC = 40
SECONDS_PER_INPUT = 30.  # Generous: CI machines are shared; hangs are far longer.


@pytest.fixture(scope="module")
def fuzz_setup():
  codecs = fuzz_decoder.load_codecs()
  seeds, donors = fuzz_decoder.all_seeds(codecs)
  for name, codec in codecs.items():  # Each decoder's first use (tracing) is not timed.
    for seed in seeds[name]:
      assert fuzz_decoder.check_library(codec, seed) == "decoded"
  return codecs, seeds, donors


@pytest.mark.parametrize("name", sorted(fuzz_decoder.MODELS))
def test_short_fuzz_run(fuzz_setup, name):
  codecs, seeds, donors = fuzz_setup
  outcomes = set()
  with tempfile.TemporaryDirectory() as folder:
    for index in range(INPUTS_PER_CODEC):
      data, _, use_cli, iterations = fuzz_decoder.input_for(
          11, name, index, seeds[name], donors)
      start = time.monotonic()
      outcomes.update(fuzz_decoder.run_one(codecs[name], data, use_cli, iterations, folder))
      assert time.monotonic() - start < SECONDS_PER_INPUT, f"input {index} too slow"
  assert any(o.startswith("error") for o in outcomes)


def corpus_files():
  return sorted(p for p in fuzz_decoder.CORPUS.glob("*/*.tfci"))


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_regression_corpus(fuzz_setup, path):
  codecs = fuzz_setup[0]
  data = path.read_bytes()
  start = time.monotonic()
  fuzz_decoder.check_info(data)
  fuzz_decoder.check_library(codecs[path.parent.name], data)
  assert time.monotonic() - start < SECONDS_PER_INPUT
