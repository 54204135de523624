"""The variable-rate codecs (hyperprior-vr, factorized-vr): one model, every quality.

* at each quality the decoded file equals the model's own reconstruction and
  its size matches the rate estimate;
* higher quality means more bits and less distortion;
* the file records its quality, and a quality the model lacks is refused;
* it survives saving and loading, runs inside an outer tf.function, and
  trains from a fixed-rate hyperprior (--init_from); factorized-vr starts
  from a hyperprior-vr's transforms and gains;
* factorized-vr has one density per quality; a model saved with one shared
  density still loads as it was, and converts to per-quality densities with
  the same rates.
"""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import IMAGES, MODELS, tiered
import tfc_codecs
from tfc_codecs import container, model_dir, training
from tfc_codecs.entropy_coding import cdf_tables, entropy_models
from tfc_codecs.codecs.base import pad_to_multiple
from tfc_codecs.errors import CodecError

TINY_VR = os.path.join(MODELS, "hyperprior_vr_tiny")
TINY_HYPERPRIOR = os.path.join(MODELS, "hyperprior_tiny")
TINY_FVR = os.path.join(MODELS, "factorized_vr_tiny")  # One density per quality.
TINY_FVR_SHARED = os.path.join(MODELS, "factorized_vr_shared_tiny")  # Saved before them.


@pytest.fixture(scope="module",
                params=tiered(["hyperprior_vr_tiny", "factorized_vr_tiny",
                               "factorized_vr_shared_tiny", "channelwise_vr_tiny"]))
def vr(request):
  return tfc_codecs.load(os.path.join(MODELS, request.param))


def qualities(codec):
  return range(1, codec.num_qualities + 1)


def test_roundtrip_and_rate_at_every_quality(vr, photos):
  for name, image in photos.items():
    sizes, errors = [], []
    for quality in qualities(vr):
      data = vr.compress(image, quality)
      stream = vr.parse(data)
      assert stream.quality == quality
      decoded = vr.decompress(data)
      expected, bits = vr.net.reconstruct(tf.constant(image), quality)
      np.testing.assert_array_equal(decoded, expected.numpy(), err_msg=f"{name} q{quality}")
      payload_bits = 8 * sum(len(p) for p in stream.payloads)
      # Each string may end up to 8 bits early; and an outlier that the model's
      # density prices at many bits costs the coder only its escape code, so the
      # files may also fall a little below the estimate (channelwise, 1.9% seen).
      count = len(stream.payloads)
      assert float(bits) * 0.97 - 8 * count <= payload_bits <= float(bits) * 1.03 + 32 * count, (
          name, quality)
      sizes.append(len(data))
      errors.append(np.mean((decoded.astype(float) - image) ** 2))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1], (name, sizes)
    assert errors[-1] < errors[0], (name, errors)


def test_default_quality_is_the_models(vr, photo):
  assert 1 <= vr.net.default_quality <= vr.num_qualities
  assert vr.compress(photo) == vr.compress(photo, vr.net.default_quality)


@pytest.mark.parametrize("quality", [0, -1, 99])
def test_quality_out_of_range_is_refused(vr, photo, quality):
  with pytest.raises(CodecError, match="quality"):
    vr.compress(photo, quality)


@pytest.mark.parametrize("quality", [0, 99])
def test_file_with_a_quality_the_model_lacks_is_refused(vr, photo, quality):
  stream = vr.parse(vr.compress(photo, 1))
  data = container.serialize(dataclasses.replace(stream, quality=quality))
  with pytest.raises(CodecError, match="quality"):
    vr.decompress(data)


def test_quality_changes_only_the_gains(vr, photo):
  """Same file, other quality in the header: decodes, but to another image."""
  stream = vr.parse(vr.compress(photo, 2))
  other = container.serialize(dataclasses.replace(stream, quality=1))
  assert not np.array_equal(vr.decompress(other), vr.decompress(container.serialize(stream)))


def test_inside_outer_tf_function(vr, photo):
  net = vr.net

  @tf.function
  def roundtrip(image, quality):
    payloads = net.compress(image, quality)
    return payloads, net.decompress(payloads, tf.shape(image)[:2], quality)

  for quality in (1, vr.num_qualities):
    payloads, decoded = roundtrip(tf.constant(photo), tf.constant(quality))
    assert list(payloads.numpy()) == list(net.compress(tf.constant(photo), quality).numpy())
    np.testing.assert_array_equal(
        decoded.numpy(), net.reconstruct(tf.constant(photo), quality)[0].numpy())


def test_resaves_identically(vr, tmp_path, photo):
  fingerprint = model_dir.save(vr.net, str(tmp_path / "copy"), vr.meta["provenance"])
  assert fingerprint == vr.meta["fingerprint"]
  copy = tfc_codecs.load(str(tmp_path / "copy"))
  assert copy.net is not vr.net and copy.num_qualities == vr.num_qualities
  data = vr.compress(photo, 1)
  np.testing.assert_array_equal(copy.decompress(data), vr.decompress(data))
  meta = model_dir.read_meta(str(tmp_path / "copy"))
  assert (meta["num_qualities"], meta["default_quality"]) == (
      vr.num_qualities, vr.net.default_quality)


@pytest.mark.slow  # Trains a model: > 10 s.
def test_trains_from_a_fixed_rate_hyperprior(tmp_path, photo):
  """--init_from a hyperprior: its weights carry over, gains start at sqrt(λ/λ_ref)."""
  lambdas = [0.003, 0.0067, 0.015]
  out = training.train(training.TrainConfig(
      "hyperprior-vr", str(tmp_path / "run"), train_glob=str(IMAGES), patch_size=64,
      batch_size=2, max_steps=1, learning_rate=1e-9, init_from=TINY_HYPERPRIOR,
      model_config=dict(lambdas=lambdas), log_every=1), printer=lambda _: None)
  source = tfc_codecs.load(TINY_HYPERPRIOR)
  tuned = tfc_codecs.load(out)
  assert tuned.codec_name == "hyperprior-vr" and tuned.num_qualities == 3
  assert tuned.net.default_quality == 2  # λ nearest the reference 0.0067.
  for a, b in zip(tuned.net.trainable_weights, source.net.trainable_weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-3, atol=1e-6)
  gains = np.exp(tuned.net.log_gain.numpy())
  np.testing.assert_allclose(gains[:, 0], np.sqrt(np.array(lambdas) / 0.0067), rtol=2e-3)
  # At the reference quality the gains are 1: it decodes like the source model.
  np.testing.assert_array_equal(
      tuned.decompress(tuned.compress(photo, 2)), source.decompress(source.compress(photo)))


@pytest.mark.slow  # Trains a model: > 10 s.
def test_factorized_vr_starts_from_a_hyperprior_vr(tmp_path):
  """--init_from a hyperprior-vr: transforms and gains carry over, the
  factorized prior (which the hyperprior lacks) starts afresh."""
  out = training.train(training.TrainConfig(
      "factorized-vr", str(tmp_path / "run"), train_glob=str(IMAGES), patch_size=64,
      batch_size=2, max_steps=1, learning_rate=1e-9, init_from=TINY_VR,
      log_every=1), printer=lambda _: None)
  source = tfc_codecs.load(TINY_VR).net
  tuned = tfc_codecs.load(out).net
  assert tuned.codec_name == "factorized-vr"
  assert tuned.config == {**source.config, "per_quality_priors": True}
  for part in ("analysis", "synthesis"):
    for a, b in zip(getattr(tuned, part).trainable_weights,
                    getattr(source, part).trainable_weights):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-3, atol=1e-6)
  np.testing.assert_allclose(tuned.log_gain.numpy(), source.log_gain.numpy(), rtol=2e-3, atol=1e-3)


@pytest.mark.slow  # Trains a model: > 10 s.
def test_init_from_with_other_lambdas_resamples_the_gains(tmp_path):
  """New λ values below, between and at the source's: gains at a shared λ
  carry over, between two they interpolate in log λ, below the lowest they
  follow the ½·log λ law; the default quality is chosen anew."""
  source = tfc_codecs.load(TINY_VR).net
  low, shared = source.lambdas[0] / 4, source.lambdas[0]
  between = float(np.sqrt(source.lambdas[0] * source.lambdas[1]))
  out = training.train(training.TrainConfig(
      "hyperprior-vr", str(tmp_path / "run"), train_glob=str(IMAGES), patch_size=64,
      batch_size=2, max_steps=1, learning_rate=1e-9, init_from=TINY_VR,
      model_config=dict(lambdas=[low, shared, between]), log_every=1), printer=lambda _: None)
  tuned = tfc_codecs.load(out).net
  assert tuned.lambdas == (low, shared, between)
  assert tuned.default_quality == 3  # Nearest the reference λ among the new ones.
  for part, sign in (("log_gain", 1.), ("log_inverse_gain", -1.)):
    old, new = getattr(source, part).numpy(), getattr(tuned, part).numpy()
    np.testing.assert_allclose(new[1], old[0], atol=1e-3)
    np.testing.assert_allclose(new[2], (old[0] + old[1]) / 2, atol=1e-3)
    np.testing.assert_allclose(new[0], old[0] + sign * 0.5 * np.log(1 / 4), atol=1e-3)


def test_init_from_a_codec_with_no_shared_weights_is_refused(tmp_path):
  with pytest.raises(CodecError, match="share no weights"):
    training.train(training.TrainConfig(
        "rnn", str(tmp_path / "run"), train_glob=str(IMAGES), patch_size=32,
        batch_size=2, max_steps=1, init_from=TINY_VR), printer=lambda _: None)


@pytest.mark.parametrize("codec", ["hyperprior-vr", "factorized-vr"])
def test_bad_lambdas_are_refused(tmp_path, codec):
  for lambdas in ([0.01, 0.002], [], [0., 0.1]):
    with pytest.raises(CodecError, match="lambdas"):
      training.train(training.TrainConfig(
          codec, str(tmp_path / str(len(lambdas))), train_glob=str(IMAGES),
          model_config=dict(lambdas=lambdas), max_steps=0), printer=lambda _: None)


def _tune(tmp_path, init_from, **model_config):
  """A 1-step, learning-rate 1e-9 factorized-vr run from `init_from`."""
  return tfc_codecs.load(training.train(training.TrainConfig(
      "factorized-vr", str(tmp_path / "run"), train_glob=str(IMAGES), patch_size=64,
      batch_size=2, max_steps=1, learning_rate=1e-9, init_from=init_from,
      model_config=model_config, log_every=1), printer=lambda _: None)).net


def test_factorized_vr_has_a_density_per_quality():
  net = tfc_codecs.load(TINY_FVR).net
  channels = net.config["latent_filters"]
  assert net.config["per_quality_priors"]
  assert net.prior.batch_shape == [net.num_qualities * channels]
  assert net.entropy_tables()["cdf_offset"].shape == (net.num_qualities * channels,)
  # Trained apart: the densities of the qualities differ.
  matrix = net.prior.trainable_variables[0].numpy().reshape(net.num_qualities, channels, -1)
  assert np.abs(matrix[0] - matrix[-1]).max() > 1e-3


def test_shared_density_model_loads_and_resaves_as_it_was(tmp_path):
  shared = tfc_codecs.load(TINY_FVR_SHARED)
  assert not shared.net.config["per_quality_priors"]
  assert shared.net.prior.batch_shape == [shared.net.config["latent_filters"]]
  assert model_dir.save(shared.net, str(tmp_path / "copy"), shared.meta["provenance"]) \
      == shared.meta["fingerprint"]
  assert "per_quality_priors" not in model_dir.read_meta(str(tmp_path / "copy"))["config"]


@pytest.mark.slow  # Trains a model: > 10 s.
def test_init_from_a_shared_density_copies_it_to_every_quality(tmp_path, photo):
  """Same rate estimate and same file sizes as the source at every quality."""
  source = tfc_codecs.load(TINY_FVR_SHARED)
  tuned = _tune(tmp_path, TINY_FVR_SHARED)
  assert tuned.config["per_quality_priors"]
  assert tuned.prior.batch_shape == [source.num_qualities * source.net.config["latent_filters"]]
  tuned_codec = tfc_codecs.load(str(tmp_path / "run" / "model"))
  for quality in qualities(source):
    _, expected = source.net.reconstruct(tf.constant(photo), quality)
    _, bits = tuned.reconstruct(tf.constant(photo), quality)
    np.testing.assert_allclose(float(bits), float(expected), rtol=1e-3)
    assert abs(len(tuned_codec.compress(photo, quality))
               - len(source.compress(photo, quality))) <= 2


@pytest.mark.slow  # Trains a model: > 10 s.
def test_init_from_other_lambdas_takes_the_nearest_qualitys_density(tmp_path):
  source = tfc_codecs.load(TINY_FVR).net
  lambdas = [source.lambdas[0] / 3, source.lambdas[-1] * 0.9]
  tuned = _tune(tmp_path, TINY_FVR, lambdas=lambdas)
  channels = source.config["latent_filters"]
  for old, new in zip(source.prior.trainable_variables, tuned.prior.trainable_variables):
    old = old.numpy().reshape(source.num_qualities, channels, -1)
    new = new.numpy().reshape(len(lambdas), channels, -1)
    np.testing.assert_allclose(new[0], old[0], rtol=2e-3, atol=1e-5)
    np.testing.assert_allclose(new[1], old[-1], rtol=2e-3, atol=1e-5)


def test_each_quality_codes_with_its_own_tables(photo):
  """The file at quality q is byte for byte the latents coded with only
  quality q's rows of the tables."""
  net = tfc_codecs.load(TINY_FVR).net
  channels, tables = net.config["latent_filters"], net.entropy_tables()
  rows = cdf_tables.split_rows(tables["cdf"])
  latents = net.analyze(pad_to_multiple(tf.constant(photo)[None], net.downsampling))
  files = set()
  for quality in qualities(net):
    own = slice((quality - 1) * channels, quality * channels)
    alone = entropy_models.factorized_coder(
        dict(cdf=np.concatenate(rows[own]), cdf_offset=tables["cdf_offset"][own]), channels)
    gain, _ = net._gains(tf.constant([quality - 1]))
    expected = alone.compress(latents * gain).numpy()[0]
    assert net.compress(tf.constant(photo), quality).numpy()[0] == expected, quality
    files.add(expected)
  assert len(files) == net.num_qualities
