"""The channel-conditional codec: its start from a hyperprior, its fixed-point
slice chain, and its options. (Round trips, bit estimates, determinism,
stock exports and the CLI run on its tiny models with the other codecs'.)"""

import os

import numpy as np
import pytest
import tensorflow as tf

import tfc_codecs
from tfc_codecs import registry, training
from tfc_codecs.codecs.base import pad_to_multiple
from tfc_codecs.errors import CodecError
from tfc_codecs.layers import fixed_point
from tfc_codecs.layers.gdn_transforms import ContextTransform, HyperSynthesisTransform

from conftest import MODELS


@pytest.mark.slow  # Trains a model: > 10 s.
def test_starts_as_the_hyperprior_it_is_trained_from(tmp_path, photos):
  """`--init_from` a hyperprior copies every shared part; the new parts
  (signed hyper-analysis input, means, context, LRP) start at zero, so before
  any step the channelwise model reconstructs exactly what the hyperprior
  does, at the same rate."""
  source = str(MODELS / "hyperprior_tiny")
  out = training.train(training.TrainConfig(
      "channelwise", str(tmp_path / "run"), lmbda=0.01, train_glob=str(MODELS.parent / "images"),
      patch_size=64, batch_size=1, max_steps=0, init_from=source,
      model_config={"context_filters": 8}), printer=lambda _: None)
  hyperprior, channelwise = tfc_codecs.load(source), tfc_codecs.load(out)
  assert channelwise.net.config["num_filters"] == hyperprior.net.config["num_filters"]
  for name, image in photos.items():
    expected, expected_bits = hyperprior.net.reconstruct(tf.constant(image))
    actual, actual_bits = channelwise.net.reconstruct(tf.constant(image))
    np.testing.assert_array_equal(actual.numpy(), expected.numpy(), err_msg=name)
    # Indexes are rounded once (hyperprior) or via 12 fractional bits.
    assert abs(float(actual_bits) / float(expected_bits) - 1) < 0.002, name
    assert abs(len(channelwise.compress(image)) - len(hyperprior.compress(image))) < (
        8 * channelwise.num_payloads + 16), name


@pytest.mark.parametrize("transform", ["context", "hyper_synthesis"])
def test_fixed_point_stack_follows_the_float_transform(transform):
  """The exact fixed-point evaluation computes what the float layers compute
  (same padding, kernel orientation and upsampling), to within its rounding."""
  tf.random.set_seed(1)
  if transform == "context":
    layers = ContextTransform(16, 6, "context")
    x = tf.round(tf.random.normal([1, 9, 13, 10]) * 4 * fixed_point.ONE) / fixed_point.ONE
    scale = fixed_point.ONE
  else:
    layers = HyperSynthesisTransform(8, 6)
    x = tf.round(tf.random.normal([1, 5, 7, 8]) * 3)
    scale = 1.
  layers(x)
  for variable in layers.trainable_variables:  # Zero-initialized layers get weights.
    variable.assign(tf.random.normal(variable.shape, stddev=0.2))
  expected = tf.cast(layers(x), tf.float64).numpy()
  acc, acc_scale = fixed_point.exact_conv_stack(layers.layers, tf.cast(x, tf.float64) * scale,
                                                scale)
  actual = (fixed_point.rescale(acc, acc_scale) / fixed_point.ONE).numpy()
  assert actual.shape == expected.shape
  assert np.abs(actual - expected).max() < 0.01 * max(1., np.abs(expected).max())


@pytest.mark.slow  # > 10 s.
def test_float_noise_in_the_context_transforms_leaves_decoding_unchanged(photos, monkeypatch):
  """The slice means and indexes come from the fixed-point chain only: a
  +0.5 shift of every float32 hyper-synthesis and context-transform output
  (far beyond any kernel's rounding) changes no decoded latent."""
  codec = tfc_codecs.load(str(MODELS / "channelwise_tiny"))
  net = codec.net
  image = list(photos.values())[0]
  data = codec.compress(image)
  expected = codec.decompress(data)
  x = pad_to_multiple(tf.cast(image, tf.float32)[None], net.downsampling)
  expected_bits = float(net(x, training=False)[1][0])
  noisy = registry.codec_class("channelwise")(**net.config)
  noisy.set_weights(net.get_weights())  # A fresh model: no traced functions.
  noisy.set_entropy_tables(net.entropy_tables())
  for transform in [noisy.hyper_synthesis, noisy.hyper_synthesis_mean] + noisy.parameter_transforms:
    for layer in transform.layers:
      monkeypatch.setattr(layer, "call", lambda v, _call=layer.call: _call(v) + 0.5)
  assert float(noisy(x, training=False)[1][0]) == expected_bits
  stream = codec.parse(data)
  decoded = noisy.decompress(tf.constant(stream.payloads), tf.constant(image.shape[:2]))
  np.testing.assert_array_equal(decoded.numpy(), expected)


def test_slices_have_the_context_of_the_earlier_ones():
  net = tfc_codecs.load(str(MODELS / "channelwise_tiny")).net
  assert sum(net.slices) == net.config["latent_filters"]
  assert net.num_payloads == 1 + len(net.slices)
  inputs = [t.layers[0].kernel.shape[2] for t in net.parameter_transforms]
  m = net.config["latent_filters"]
  assert inputs == [2 * m + sum(net.slices[:k]) for k in range(len(net.slices))]


@pytest.mark.parametrize("slices", [(4, 3), (0, 8), (3, 3, 3)])
def test_slices_must_cover_the_latents(slices):
  with pytest.raises(CodecError, match="slices"):
    registry.codec_class("channelwise")(num_filters=8, latent_filters=8, slices=slices)


@pytest.mark.slow  # CLI subprocesses.
def test_cli_trains_with_given_slices(tmp_path, run_cli):
  result = run_cli("train", "--model_type", "channelwise", "--lambda", "0.01",
                   "--num_filters", "8", "--latent_filters", "6", "--slices", "2,4",
                   "--context_filters", "8", "--train_dir", tmp_path / "run",
                   "--train_glob", MODELS.parent / "images", "--patch_size", "64",
                   "--batch_size", "1", "--max_steps", "2", "--log_every", "1")
  assert result.returncode == 0, result.stderr[-2000:]
  codec = tfc_codecs.load(str(tmp_path / "run" / "model"))
  assert codec.net.slices == (2, 4) and codec.num_payloads == 3
  bad = run_cli("train", "--model_type", "channelwise", "--lambda", "0.01",
                "--latent_filters", "6", "--slices", "2,x", "--train_dir", tmp_path / "bad",
                "--train_glob", MODELS.parent / "images")
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert "--slices" in bad.stderr.strip().splitlines()[-1]
  assert not os.path.exists(tmp_path / "bad" / "model")
