"""Shared fixtures: the tiny test models, the test photos and a CLI runner.

Loading a model and importing TensorFlow take seconds, so models and photos
are loaded once per session. Tests use local files only (testdata/, tmp_path).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # Before TensorFlow loads.
# The traced-function cache (tfc_codecs/traced_cache.py) of this session, inherited
# by CLI subprocesses: a test run never writes to the user's cache.
_CACHE = tempfile.TemporaryDirectory(prefix="tfc_codecs_cache-")
os.environ["TFC_CODECS_CACHE"] = _CACHE.name

TESTDATA = REPO / "testdata"
MODELS = TESTDATA / "models"
IMAGES = TESTDATA / "images"
MODEL_DIRS = {
    "channelwise": MODELS / "channelwise_tiny",
    "factorized": MODELS / "factorized_tiny",
    "hyperprior": MODELS / "hyperprior_tiny",
}
PHOTO_PATHS = sorted(IMAGES.glob("*.png"))
# Tiny models whose tests take several times the others' (the channelwise slice
# chain): parametrized over models, their cases are in the slow tier;
# test_channelwise.py and test_golden.py cover them in the fast one.
SLOW_MODELS = ("channelwise",)
CLI_SCRIPT = REPO / "bin" / "tfc_codecs"


@pytest.fixture(scope="session")
def repo_root() -> Path:
  return REPO


@pytest.fixture(scope="session")
def model_dirs():
  """Codec name -> tiny model directory."""
  return dict(MODEL_DIRS)


@pytest.fixture(scope="session")
def codecs():
  """Codec name -> loaded `ImageCodec` of the tiny model."""
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  return {name: tfc_codecs.load(str(path)) for name, path in MODEL_DIRS.items()}


def tiered(names):
  """pytest params of model names, those of SLOW_MODELS marked slow."""
  return [pytest.param(name, marks=pytest.mark.slow) if name.startswith(SLOW_MODELS) else name
          for name in names]


@pytest.fixture(scope="session", params=tiered(sorted(MODEL_DIRS)))
def codec(request, codecs):
  """Each tiny model in turn."""
  return codecs[request.param]


@pytest.fixture(scope="session")
def photos():
  """File name -> uint8 [96, 128, 3] test photo."""
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  assert len(PHOTO_PATHS) == 4, PHOTO_PATHS
  result = {}
  for path in PHOTO_PATHS:
    image, notes = images.read_image(str(path))
    assert notes == [] and image.shape == (96, 128, 3) and image.dtype == np.uint8
    result[path.name] = image
  return result


@pytest.fixture(scope="session")
def photo(photos):
  """One test photo."""
  return photos[PHOTO_PATHS[0].name]


def random_symbols(seed, n, spread=1.5):
  """(values, scale-table indexes) int32 [n]: Gaussian values at `spread`
  times their scale (the larger, the more escapes)."""
  from tfc_codecs.entropy_coding import entropy_models  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  indexes = rng.integers(0, entropy_models.NUM_SCALES, n).astype(np.int32)
  scales = entropy_models._scale_fn(indexes.astype(np.float32)).numpy()  # pylint: disable=protected-access
  values = np.round(rng.normal(size=n) * scales * spread).astype(np.int32)
  return values, indexes


def corrupted_payloads(good: bytes, seed: int, trials: int):
  """`trials` bad payloads in turn: random bytes, `good` with one bit
  flipped, `good` cut short."""
  rng = np.random.default_rng(seed)
  for trial in range(trials):
    if trial % 3 == 0:
      yield rng.integers(0, 256, rng.integers(0, 64)).astype(np.uint8).tobytes()
    elif trial % 3 == 1:
      data = bytearray(good)
      data[rng.integers(len(data))] ^= 1 << rng.integers(8)
      yield bytes(data)
    else:
      yield good[:rng.integers(len(good))]


# Importing TensorFlow sets these in this process; a user's shell has none of
# them, and TF2_BEHAVIOR changes how TensorFlow starts up, so subprocesses must
# not inherit them.
TF_SET_VARIABLES = ("TF2_BEHAVIOR", "TPU_ML_PLATFORM")


def subprocess_env(extra=None):
  """The environment of a user's shell for a subprocess."""
  env = {k: v for k, v in os.environ.items()
         if k not in TF_SET_VARIABLES and not k.startswith("PYTEST_")}
  env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  env.pop("PYTHONPATH", None)  # bin/tfc_codecs puts the repo on the path itself.
  env.update(extra or {})
  return env


@pytest.fixture(scope="session")
def run_cli():
  """run_cli(*args, cwd=REPO, env=None) -> CompletedProcess of `tfc_codecs ARGS`."""

  def run(*args, cwd=REPO, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, str(CLI_SCRIPT)] + [str(a) for a in args],
        cwd=str(cwd), env=subprocess_env(env), capture_output=True, text=True,
        timeout=timeout, check=False)

  return run


@pytest.fixture(scope="session")
def shell_env():
  """shell_env(extra=None) -> environment dict for a subprocess."""
  return subprocess_env
