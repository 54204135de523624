"""The determinism contract (`tfc_codecs.contract`) in other processes: with
the default settings, one thread, and oneDNN off, every file's entropy-decoded
latents (tests/latents.py) are bit-identical to this process's and compress
writes the same bytes; decoded pixels are identical with the same kernels
(another process, one thread) and within ±PIXEL_TOLERANCE_ACROSS_KERNELS with
oneDNN off."""

import subprocess
import sys
from typing import List, NamedTuple

import numpy as np
import tensorflow as tf
import pytest

from conftest import MODELS
from latents import entropy_decoded
from tfc_codecs import contract

# A fresh interpreter: decodes each .tfci file to .npy, re-encodes the image
# and records the file's entropy-decoded latents (.npz).
SCRIPT = r"""
import sys
import numpy as np
import tfc_codecs
sys.path.insert(0, "tests")
from latents import entropy_decoded
for model, quality, stem in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
  codec = tfc_codecs.load(model)
  quality = int(quality) or None
  with open(stem + ".tfci", "rb") as f:
    data = f.read()
  np.save(stem + ".decoded.npy", codec.decompress(data))
  with open(stem + ".again.tfci", "wb") as f:
    f.write(codec.compress(np.load(stem + ".image.npy"), quality=quality))
  np.savez(stem + ".latents.npz", *entropy_decoded(codec, data))
print("ok")
"""

# Name -> (extra environment variables, how far decoded samples may be from
# this process's: the same kernels decode identically).
ENVIRONMENTS = {
    "default": ({}, 0),
    "one_thread": ({"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}, 0),
    "onednn_off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, contract.PIXEL_TOLERANCE_ACROSS_KERNELS),
}
# The tiny models of conftest.MODEL_DIRS, and the rnn's (at 3 iterations).
RNN_QUALITY = 3
NAMES = ["channelwise", "factorized", "hyperprior", "rnn"]


def mosaic(photos):
  """A 287x383 image of tiled test photos (odd size: exercises padding)."""
  tiles = list(photos.values())
  rows = [np.concatenate([tiles[(r + c) % len(tiles)] for c in range(3)], axis=1)
          for r in range(3)]
  return np.ascontiguousarray(np.concatenate(rows, axis=0)[:287, :383])


class Expected(NamedTuple):
  """This process's file, decoded image and entropy-decoded latents."""
  data: bytes
  decoded: np.ndarray
  latents: List[np.ndarray]


@pytest.fixture(scope="module")
def runs(model_dirs, photos, repo_root, shell_env, tmp_path_factory):
  """In-process files, decodes and latents, and the same work in a fresh
  process per environment (run concurrently)."""
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  image = mosaic(photos)
  models = {name: (path, 0) for name, path in model_dirs.items()}  # 0: no quality.
  models["rnn"] = (MODELS / "rnn_tiny", RNN_QUALITY)
  assert sorted(models) == NAMES
  expected = {}
  for name, (model, quality) in models.items():
    codec = tfc_codecs.load(str(model))
    data = codec.compress(image, quality=quality or None)
    expected[name] = Expected(data, codec.decompress(data), entropy_decoded(codec, data))
  outputs = {}
  processes = {}
  for env_name, (env, _) in ENVIRONMENTS.items():
    folder = tmp_path_factory.mktemp(env_name)
    args = []
    for name, (model, quality) in models.items():
      stem = str(folder / name)
      with open(stem + ".tfci", "wb") as f:
        f.write(expected[name].data)
      np.save(stem + ".image.npy", image)
      args += [str(model), str(quality), stem]
    processes[env_name] = subprocess.Popen(
        [sys.executable, "-c", SCRIPT] + args, cwd=str(repo_root), env=shell_env(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs[env_name] = folder
  try:
    for process in processes.values():
      stdout, stderr = process.communicate(timeout=600)
      assert process.returncode == 0 and stdout.strip() == "ok", stderr[-2000:]
  finally:
    for process in processes.values():
      if process.poll() is None:
        process.kill()
        process.wait()
  return image, expected, outputs


@pytest.mark.slow  # Other processes.
@pytest.mark.parametrize("env_name", sorted(ENVIRONMENTS))
@pytest.mark.parametrize("name", NAMES)
def test_other_process_decodes_the_same_latents(runs, env_name, name):
  _, expected, outputs = runs
  with np.load(outputs[env_name] / f"{name}.latents.npz") as stored:
    latents = [stored[f"arr_{k}"] for k in range(len(stored.files))]
  assert len(latents) == len(expected[name].latents)
  for k, (array, reference) in enumerate(zip(latents, expected[name].latents)):
    assert array.dtype == reference.dtype and array.shape == reference.shape, k
    mismatch = np.count_nonzero(array != reference)
    assert mismatch == 0, f"array {k}: {mismatch} entropy-decoded values differ"


@pytest.mark.slow  # Other processes.
@pytest.mark.parametrize("env_name", sorted(ENVIRONMENTS))
@pytest.mark.parametrize("name", NAMES)
def test_other_process_decodes_within_the_tolerance(runs, env_name, name):
  image, expected, outputs = runs
  decoded = np.load(outputs[env_name] / f"{name}.decoded.npy")
  assert decoded.shape == image.shape and decoded.dtype == np.uint8
  tolerance = ENVIRONMENTS[env_name][1]
  difference = contract.max_pixel_difference(decoded, expected[name].decoded)
  mismatch = np.count_nonzero(decoded != expected[name].decoded)
  assert difference <= tolerance, (
      f"{mismatch} samples differ from this process's decode, by up to {difference}")


@pytest.mark.slow  # Other processes.
@pytest.mark.parametrize("env_name", sorted(ENVIRONMENTS))
@pytest.mark.parametrize("name", NAMES)
def test_other_process_encodes_identically(runs, env_name, name):
  _, expected, outputs = runs
  again = (outputs[env_name] / f"{name}.again.tfci").read_bytes()
  assert again == expected[name].data


@pytest.mark.parametrize("perturbation", ["ulp", "half"])
def test_float_hyper_synthesis_noise_leaves_indexes_unchanged(
    codecs, photos, monkeypatch, perturbation):
  """±1 ulp of noise on every float32 hyper-synthesis layer output (what another
  machine's convolution kernels could produce) reaches the float path but not
  the scale indexes, which come from the fixed-point hyper-synthesis. A +0.5
  shift, which would move every float32-rounded index, checks that the indexes
  do not read the float outputs at all."""
  net = codecs["hyperprior"].net
  image = tf.constant(mosaic(photos)[:256, :256], tf.float32)[None]
  z_hat = tf.round(net.hyper_analysis(net.analysis(image)))
  clean_float, clean_indexes = net.hyper_synthesis(z_hat), net.scale_indexes(z_hat)
  generator = np.random.default_rng(0)

  def perturb(y):
    if perturbation == "half":
      return y + 0.5
    up = tf.constant(generator.random(y.shape) < 0.5)
    return tf.where(up, tf.experimental.numpy.nextafter(y, np.inf),
                    tf.experimental.numpy.nextafter(y, -np.inf))

  for layer in net.hyper_synthesis.layers:
    monkeypatch.setattr(layer, "call", lambda x, _call=layer.call: perturb(_call(x)))
  noisy_float = net.hyper_synthesis(z_hat)
  assert np.count_nonzero(noisy_float.numpy() != clean_float.numpy()) > (
      clean_float.shape.num_elements() // 2)
  np.testing.assert_array_equal(net.scale_indexes(z_hat).numpy(), clean_indexes.numpy())
