"""Files decode bit-identically in another process and with another thread
count, and the encoder writes the same bytes there."""

import subprocess
import sys

import numpy as np
import tensorflow as tf
import pytest

# A fresh interpreter: decodes each .tfci file to .npy and re-encodes the image.
SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf
import tfc_codecs
for model, stem in zip(sys.argv[1::2], sys.argv[2::2]):
  codec = tfc_codecs.load(model)
  with open(stem + ".tfci", "rb") as f:
    np.save(stem + ".decoded.npy", codec.decompress(f.read()))
  with open(stem + ".again.tfci", "wb") as f:
    f.write(codec.compress(np.load(stem + ".image.npy")))
print("ok")
"""

ENVIRONMENTS = {
    "default": {},
    "one_thread": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
    "onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}


def mosaic(photos):
  """A 287x383 image of tiled test photos (odd size: exercises padding)."""
  tiles = list(photos.values())
  rows = [np.concatenate([tiles[(r + c) % len(tiles)] for c in range(3)], axis=1)
          for r in range(3)]
  return np.ascontiguousarray(np.concatenate(rows, axis=0)[:287, :383])


@pytest.fixture(scope="module")
def runs(codecs, model_dirs, photos, repo_root, shell_env, tmp_path_factory):
  """In-process files and decodes, and the same work in two fresh processes
  (run concurrently) with default and single-threaded TensorFlow."""
  image = mosaic(photos)
  expected = {}
  for name, codec in codecs.items():
    data = codec.compress(image)
    expected[name] = (data, codec.decompress(data))
  outputs = {}
  processes = {}
  for env_name, env in ENVIRONMENTS.items():
    folder = tmp_path_factory.mktemp(env_name)
    args = []
    for name, (data, _) in expected.items():
      stem = str(folder / name)
      with open(stem + ".tfci", "wb") as f:
        f.write(data)
      np.save(stem + ".image.npy", image)
      args += [str(model_dirs[name]), stem]
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
@pytest.mark.parametrize("name", ["factorized", "hyperprior", "channelwise"])
def test_other_process_decodes_identically(runs, env_name, name):
  image, expected, outputs = runs
  decoded = np.load(outputs[env_name] / f"{name}.decoded.npy")
  assert decoded.shape == image.shape
  mismatch = np.count_nonzero(decoded != expected[name][1])
  assert mismatch == 0, f"{mismatch} samples differ from this process's decode"


@pytest.mark.slow  # Other processes.
@pytest.mark.parametrize("env_name", sorted(ENVIRONMENTS))
@pytest.mark.parametrize("name", ["factorized", "hyperprior", "channelwise"])
def test_other_process_encodes_identically(runs, env_name, name):
  _, expected, outputs = runs
  again = (outputs[env_name] / f"{name}.again.tfci").read_bytes()
  assert again == expected[name][0]


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
