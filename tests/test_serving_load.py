"""Short run of the serving load test (tests/stress/serving_load.py): concurrent
clients over REST and gRPC with valid and malformed requests."""

import os
import sys

import pytest

from conftest import MODEL_DIRS, PHOTO_PATHS

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "stress"))
import serving_load  # pylint: disable=wrong-import-position

pytestmark = pytest.mark.slow  # A server and clients for several seconds.


def test_mixed_load_gets_exact_answers_and_clean_refusals():
  result = serving_load.serve_and_load(
      str(MODEL_DIRS["hyperprior"]), clients=8, seconds=6., image_path=str(PHOTO_PATHS[0]))
  assert result["failures"] == []
  assert result["wrong_results"] == result["server_errors"] == 0
  assert result["malformed_accepted"] == 0
  for kind, outcomes in result["counts"].items():
    valid = kind.startswith(("compress ", "decompress "))
    assert outcomes.get("ok" if valid else "refused", 0) > 0, (kind, outcomes)
  for message in result["refusals"].values():
    assert "\n" not in message and message.startswith("server error (")
  assert result["rss_samples_mib"] and result["memory_flat"]
