"""Training: the run's settings and codec options, resuming, fine-tuning
(--init_from) and the training-time options of the codecs."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc
from PIL import Image

from conftest import IMAGES, MODELS
import tfc_codecs
from tfc_codecs import cli, model_dir, registry, training
from tfc_codecs.entropy_coding import entropy_models
from tfc_codecs.codecs.factorized import FactorizedCodec
from tfc_codecs.codecs.options import Option
from tfc_codecs.codecs.rnn import RnnCodec
from tfc_codecs.codecs.variable_rate import VariableRate
from tfc_codecs.errors import CodecError
from tfc_codecs.layers import precision

TINY_FACTORIZED = os.path.join(MODELS, "factorized_tiny")
PHOTO = IMAGES / "bsds_crop_0.png"


def train(model_type, lmbda, train_dir, printer=lambda _: None, **settings):
  """Trains the run of one TrainConfig; returns the model's path."""
  return training.train(training.TrainConfig(model_type, train_dir, lmbda=lmbda, **settings),
                        printer=printer)


RUN_FACTS = {"command", "steps", "wall_seconds", "final_train_metrics"}


@pytest.mark.slow  # Trains a model: > 10 s.
def test_the_provenance_is_the_run_s_config_and_its_facts(tmp_path):
  model_config = tfc_codecs.load(TINY_FACTORIZED).net.config
  config = training.TrainConfig(
      "factorized", str(tmp_path / "run"), lmbda=0.02, train_glob=str(IMAGES), patch_size=32,
      batch_size=1, max_steps=2, learning_rate=2e-4, decay_start=0.5, warmup_steps=1,
      clip_norm=10., min_scale=0.9, init_from=TINY_FACTORIZED, conv_dtype="bfloat16",
      checkpoint_minutes=2., log_every=1, seed=4, model_config=model_config,
      training_options=dict(quantization="mixed", density_fit="rounded"))
  provenance = tfc_codecs.load(training.train(config, printer=lambda _: None)).meta["provenance"]
  assert {k: v for k, v in provenance.items() if k not in RUN_FACTS} == config.to_dict()
  assert set(provenance) - set(config.to_dict()) == RUN_FACTS
  assert provenance["steps"] == 2 and provenance["final_train_metrics"]["step"] == 2


class TaggedCodec(FactorizedCodec):
  """A factorized codec with one more model option and training option."""

  codec_name = "tagged"
  model_options = (Option("tag", "A model option.", int),)
  training_options = (Option("mood", "A training option.", choices=("calm", "eager")),)
  mood = "calm"
  moods_trained_in = []

  def __init__(self, tag: int = 0, **config):
    super().__init__(tag=tag, **config)

  def training_loss(self, x, lmbda, distortion="mse"):
    self.moods_trained_in.append(self.mood)  # When the training step is traced.
    return super().training_loss(x, lmbda, distortion)


@pytest.mark.slow  # Trains a model: > 10 s.
def test_an_option_a_codec_declares_is_a_train_flag_that_reaches_the_codec(
    tmp_path, monkeypatch):
  monkeypatch.setitem(registry.CODECS, "tagged", TaggedCodec)
  run = tmp_path / "run"
  flags = ["tfc_codecs", "train", "--model_type", "tagged", "--train_dir", str(run),
           "--lambda", "0.01", "--train_glob", str(IMAGES), "--patch_size", "32",
           "--batch_size", "1", "--max_steps", "1", "--log_every", "1", "--num_filters", "4"]
  args = cli.parse_args(flags + ["--tag", "7", "--mood", "eager"])
  assert args.handler(args) == 0
  model = tfc_codecs.load(str(run / "model"))
  assert model.net.config == dict(tag=7, num_filters=4, latent_filters=4)
  assert set(TaggedCodec.moods_trained_in) == {"eager"}
  provenance = model.meta["provenance"]  # Constructor arguments (latent_filters 0: = N).
  assert provenance["model_config"] == dict(tag=7, num_filters=4, latent_filters=0)
  assert provenance["training_options"] == dict(
      quantization="noise", density_fit="noisy", mood="eager")
  with pytest.raises(SystemExit):  # argparse: invalid choice.
    cli.parse_args(flags + ["--mood", "sad"])
  with pytest.raises(CodecError, match="--tag applies to tagged, not factorized"):
    train("factorized", 0.01, str(tmp_path / "other"), train_glob=str(IMAGES),
          model_config=dict(tag=1))


# factorized_vr_shared_tiny predates per-quality priors (its conversion is
# tested in test_variable_rate.py), rnn_previous_tiny the rnn's "channels"
# context model (below).
@pytest.mark.parametrize("name", sorted(set(os.listdir(MODELS))
                                        - {"factorized_vr_shared_tiny", "rnn_previous_tiny"}))
@pytest.mark.slow  # Trains a model: > 10 s.
def test_init_from_starts_at_the_given_model(tmp_path, name):
  """Every weight of the model, e.g. each of the rnn's recurrent cells, carries over."""
  source_dir = os.path.join(MODELS, name)
  source = tfc_codecs.load(source_dir)
  out = train(
      source.net.codec_name, 0.01 if source.net.needs_lambda else None,
      str(tmp_path / "run"), train_glob=str(IMAGES),
      patch_size=64, batch_size=2, max_steps=1, learning_rate=1e-9, init_from=source_dir,
      log_every=1)
  tuned = tfc_codecs.load(out)
  assert tuned.net.config == source.net.config
  assert tuned.meta["provenance"]["init_from"] == source_dir
  assert len(tuned.net.trainable_weights) == len(source.net.trainable_weights)
  for a, b in zip(tuned.net.trainable_weights, source.net.trainable_weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-3, atol=1e-6, err_msg=a.name)
  image = np.asarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3)), np.uint8)
  assert tuned.decompress(tuned.compress(image)).shape == image.shape


@pytest.mark.slow  # Trains a model: > 10 s.
def test_resume_keeps_the_run_whatever_init_from_now_names(tmp_path):
  """A resumed run continues from its checkpoint even if --init_from now
  resolves to a different model (e.g. the shipped model was replaced), and a
  resume that names no model options takes the stored ones."""
  run = str(tmp_path / "run")
  common = dict(train_glob=str(IMAGES), patch_size=32,
                batch_size=2, learning_rate=1e-4, log_every=1)
  train("factorized", 0.01, run, max_steps=1, init_from=TINY_FACTORIZED, **common)
  first = tfc_codecs.load(os.path.join(run, "model"))
  messages = []
  out = train("factorized", 0.01, run, max_steps=2,
              init_from=str(tmp_path / "no such model"),
              **dict(common, printer=messages.append))
  assert any("resuming" in m for m in messages), messages
  assert tfc_codecs.load(out).net.config == first.net.config
  out = train("factorized", 0.01, run, max_steps=3, **common)
  resumed = tfc_codecs.load(out)
  assert resumed.meta["provenance"]["steps"] == 3
  assert resumed.net.config == first.net.config
  # The run's provenance keeps the model it started from.
  assert resumed.meta["provenance"]["init_from"] == TINY_FACTORIZED


def test_init_from_a_previous_context_rnn_keeps_all_but_the_context_model(tmp_path):
  source_dir = os.path.join(MODELS, "rnn_previous_tiny")
  source = tfc_codecs.load(source_dir).net
  out = train("rnn", None, str(tmp_path / "run"), train_glob=str(IMAGES),
              patch_size=32, batch_size=2, max_steps=1, learning_rate=1e-9,
              init_from=source_dir, log_every=1)
  tuned = tfc_codecs.load(out).net
  assert source.context == "previous" and tuned.context == "channels"
  assert {k: v for k, v in tuned.config.items() if k != "context"} == {
      k: v for k, v in source.config.items() if k != "context"}
  shared = [v for v in source.trainable_weights if "context" not in v.name]
  kept = [v for v in tuned.trainable_weights if "context" not in v.name]
  assert len(kept) == len(shared) == len(tuned.trainable_weights) - 2
  for a, b in zip(kept, shared):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-3, atol=1e-6, err_msg=a.name)


@pytest.mark.slow  # Trains a model: > 10 s.
def test_runs_store_every_option_and_older_runs_resume_as_they_started(tmp_path):
  """A new run records every model option (so a later default cannot change
  it); a run stored before an option existed resumes with the value its
  absence implies (the rnn's context model: "previous")."""
  common = dict(train_glob=str(IMAGES), patch_size=32, batch_size=2, learning_rate=1e-4,
                log_every=1)
  options = dict(width=0.0625, train_iterations=1)
  run = tmp_path / "new"
  train("rnn", None, str(run), max_steps=1, model_config=options, **common)
  stored = json.loads((run / "train_config.json").read_text())["model_config"]
  assert stored["context"] == "channels" and stored["max_iterations"] == 16
  run = tmp_path / "older"
  train("rnn", None, str(run), max_steps=1,
        model_config=dict(options, context="previous"), **common)
  config = json.loads((run / "train_config.json").read_text())
  config["model_config"] = options  # As runs stored only the options given.
  (run / "train_config.json").write_text(json.dumps(config))
  out = train("rnn", None, str(run), max_steps=2, **common)
  assert tfc_codecs.load(out).net.context == "previous"


@pytest.mark.slow  # Trains a model: > 10 s.
def test_resume_drops_the_logged_steps_past_its_checkpoint(tmp_path):
  """A run stopped after its last checkpoint retrains the steps since: its
  curve must not log those steps twice."""
  run = tmp_path / "run"
  common = dict(train_glob=str(IMAGES), patch_size=32, batch_size=2,
                learning_rate=1e-4, log_every=1)
  train("factorized", 0.01, str(run), max_steps=2, init_from=TINY_FACTORIZED,
        **common)
  progress = run / "progress.jsonl"
  with open(progress, "a") as f:  # Steps logged after the checkpoint at step 2.
    f.write('{"step": 3, "loss": 9.0}\n{"step": 4, "loss": 9.0}\n')
  out = train("factorized", 0.01, str(run), max_steps=4, **common)
  steps = [json.loads(line)["step"] for line in progress.read_text().splitlines()]
  assert steps == [1, 2, 3, 4]
  assert tfc_codecs.load(out).meta["provenance"]["final_train_metrics"]["loss"] != 9.0


@pytest.mark.slow  # Trains a model: > 10 s.
def test_resume_accepts_the_run_s_own_model_options_only(tmp_path):
  """Repeating the run's model options on resume is fine; changing one is
  refused (the checkpoint holds another model)."""
  run = str(tmp_path / "run")
  common = dict(train_glob=str(IMAGES), patch_size=32,
                batch_size=2, learning_rate=1e-4, log_every=1)
  options = dict(num_filters=8, latent_filters=12)
  train("factorized", 0.01, run, max_steps=1, model_config=options, **common)
  out = train("factorized", 0.01, run, max_steps=2,
              model_config=dict(num_filters=8), **common)
  assert tfc_codecs.load(out).net.config["latent_filters"] == 12
  for changed in (dict(num_filters=16), dict(options, latent_filters=16)):
    with pytest.raises(CodecError, match="different model"):
      train("factorized", 0.01, run, max_steps=3, model_config=changed, **common)
  with pytest.raises(CodecError, match="different model"):
    train("factorized", 0.02, run, max_steps=3, **common)


@pytest.mark.parametrize("name", ["factorized_tiny", "hyperprior_tiny",
                                  "factorized_vr_tiny", "hyperprior_vr_tiny"])
def test_mixed_quantization_trains_the_decoder_on_the_latents_it_will_decode(name):
  """With "mixed", the training pass reconstructs from the rounded latents
  (what decoding sees), and the distortion still reaches the analysis
  transform; with "noise" it reconstructs from noisy latents."""
  net, _ = model_dir.load(os.path.join(MODELS, name))
  x = tf.constant(np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)), tf.float32)
  if isinstance(net, VariableRate):
    index = tf.constant([0, net.num_qualities - 1])
    forward = lambda training: net._forward_at(x, index, training)  # pylint: disable=protected-access
  else:
    forward = lambda training: net(x, training=training)
  decoded, _ = forward(False)
  noisy, _ = forward(True)
  assert np.abs(noisy.numpy() - decoded.numpy()).max() > 0.1
  net.quantization = "mixed"
  with tf.GradientTape() as tape:
    mixed, bits = forward(True)
    distortion = tf.reduce_mean(tf.math.squared_difference(x, mixed))
  np.testing.assert_allclose(mixed.numpy(), decoded.numpy(), atol=1e-3)
  assert np.all(bits.numpy() > 0)
  gradients = tape.gradient(distortion, net.analysis.trainable_variables)
  assert all(g is not None for g in gradients)
  assert max(float(tf.reduce_max(tf.abs(g))) for g in gradients) > 0


@pytest.mark.slow  # 4 short training runs, 5-7 s each.
@pytest.mark.parametrize("option,value,bad,model,other", [
    ("quantization", "mixed", "round", "factorized_tiny", "rnn"),
    ("density_fit", "rounded", "exact", "factorized_tiny", "rnn"),
    ("iteration_loss", "log-mse", "l2", "rnn_tiny", "factorized"),
    ("binarization", "sign", "round", "rnn_tiny", "factorized")])
def test_training_options_are_recorded_and_refused_where_they_do_not_apply(
    tmp_path, option, value, bad, model, other):
  common = dict(train_glob=str(IMAGES), patch_size=32, batch_size=2, max_steps=1,
                learning_rate=1e-9, log_every=1)
  source = tfc_codecs.load(os.path.join(MODELS, model)).net
  out = train(source.codec_name, 0.01 if source.needs_lambda else None, str(tmp_path / "run"),
              init_from=os.path.join(MODELS, model), training_options={option: value},
              **common)
  assert tfc_codecs.load(out).meta["provenance"]["training_options"][option] == value
  with pytest.raises(CodecError, match=f"--{option} applies to .*, not {other}"):
    train(other, 0.01, str(tmp_path / "other"), training_options={option: value}, **common)
  with pytest.raises(CodecError, match=f"--{option} must be one of"):
    train(source.codec_name, 0.01, str(tmp_path / "bad"), training_options={option: bad},
          **common)
  assert not (tmp_path / "other").exists() and not (tmp_path / "bad").exists()


def test_rate_fitted_to_rounded_is_the_noisy_rate_but_fits_the_density_to_rounded_values():
  prior = entropy_models.factorized_prior(3)
  values = tf.constant(np.random.default_rng(4).normal(0, 2, (2, 5, 5, 3)), tf.float32)
  noisy = values + tf.constant(np.random.default_rng(5).uniform(-.5, .5, values.shape),
                               tf.float32)
  bits_of = lambda v: entropy_models.factorized_bits(prior, v)

  def gradients(fn, wrt):
    with tf.GradientTape() as tape:
      tape.watch(wrt[0])
      total = tf.reduce_sum(fn())
    return total, tape.gradient(total, wrt)

  wrt = [noisy] + list(prior.trainable_variables)
  fitted, fitted_grads = gradients(
      lambda: entropy_models.rate_fitted_to_rounded(bits_of, noisy, tf.round(values)), wrt)
  plain, plain_grads = gradients(lambda: bits_of(noisy), wrt)
  _, rounded_grads = gradients(lambda: bits_of(tf.round(values)), wrt)
  assert float(fitted) == pytest.approx(float(plain), rel=1e-6)
  np.testing.assert_allclose(fitted_grads[0], plain_grads[0], rtol=1e-5, atol=1e-6)
  for got, want, noisy_fit in zip(fitted_grads[1:], rounded_grads[1:], plain_grads[1:]):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, noisy_fit)


@pytest.mark.parametrize("name", ["factorized_tiny", "hyperprior_tiny",
                                  "factorized_vr_tiny", "hyperprior_vr_tiny"])
def test_density_fit_rounded_trains_every_learned_density_on_rounded_values(name):
  """With "rounded", the densities' gradients depend on the rounded latents
  only (not on the noise drawn); with "noisy" they do; the analysis still
  gets the rate's gradient."""
  net, _ = model_dir.load(os.path.join(MODELS, name))
  density = net.hyperprior if hasattr(net, "hyperprior") else net.prior
  x = tf.constant(np.random.default_rng(6).uniform(0, 255, (2, 64, 64, 3)), tf.float32)

  def rate_gradients(seed):
    tf.random.set_seed(seed)
    with tf.GradientTape() as tape:
      if isinstance(net, VariableRate):
        _, bits = net._forward_at(x, tf.constant([0, 1]), True)  # pylint: disable=protected-access
      else:
        _, bits = net(x, training=True)
      rate = tf.reduce_sum(bits)
    return tape.gradient(rate, list(density.trainable_variables) + net.analysis.trainable_variables)

  def same(a, b):
    return all(np.allclose(u, v, rtol=1e-4, atol=1e-6)
               for u, v in zip(a[:len(density.trainable_variables)],
                               b[:len(density.trainable_variables)]))

  assert not same(rate_gradients(1), rate_gradients(2))
  net.density_fit = "rounded"
  first, second = rate_gradients(1), rate_gradients(2)
  assert same(first, second)
  assert max(float(tf.reduce_max(tf.abs(g))) for g in first[len(density.trainable_variables):]) > 0


def _convolutions(net):
  """Every convolution layer of a model."""
  return [m for m in net.submodules
          if isinstance(m, (tf.keras.layers.Conv2D, tfc.SignalConv2D))]


def _bfloat16_twin(name):
  """A test model and the same model built inside conv_dtype("bfloat16"),
  checked to have bfloat16 convolutions only and the float32 model's weights
  (names, shapes, dtype), which it is given."""
  reference, _ = model_dir.load(os.path.join(MODELS, name))
  with precision.conv_dtype("bfloat16"):
    net = type(reference)(**reference.config)
  assert len(_convolutions(net)) == len(_convolutions(reference))
  assert {layer.compute_dtype for layer in _convolutions(net)} == {"bfloat16"}
  assert {layer.compute_dtype for layer in _convolutions(reference)} == {"float32"}
  assert ([(v.name, v.shape, v.dtype) for v in net.weights]
          == [(v.name, v.shape, v.dtype) for v in reference.weights])
  for target, source in zip(net.weights, reference.weights):
    target.assign(source)
  return reference, net


def test_bfloat16_convolutions_compute_what_float32_ones_do():
  """A hyperprior built with bfloat16 convolutions has float32 outputs and the
  float32 model's reconstruction and bits up to bfloat16 rounding."""
  reference, net = _bfloat16_twin("hyperprior_vr_tiny")
  x = tf.constant(np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)), tf.float32)
  index = tf.constant([0, net.num_qualities - 1])
  want, want_bits = reference._forward_at(x, index, False)  # pylint: disable=protected-access
  got, bits = net._forward_at(x, index, False)  # pylint: disable=protected-access
  assert got.dtype == bits.dtype == tf.float32
  # 0..255 scale: below 1 on the AMX-BF16 CPUs of earlier sessions, 1.13 on an AVX2 one.
  assert float(tf.reduce_mean(tf.abs(got - want))) < 2.
  np.testing.assert_allclose(bits.numpy(), want_bits.numpy(), rtol=0.05)
  assert float(tf.reduce_mean(tf.abs(got - want))) > 0  # bfloat16 did run.


def test_rnn_bfloat16_convolutions_compute_what_float32_ones_do():
  """Every convolution of the rnn (cells, binarizer, decoder) computes in
  bfloat16 with float32 weights and outputs; the reconstruction stays close."""
  reference, net = _bfloat16_twin("rnn_tiny")
  assert len(_convolutions(net)) > 10
  x = tf.constant(np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3)), tf.float32)
  want, _ = reference(x, training=False)
  got, _ = net(x, training=False)
  assert got.dtype == tf.float32
  assert 0 < float(tf.reduce_mean(tf.abs(got - want))) < 2.


@pytest.mark.slow  # Trains a model: > 10 s.
@pytest.mark.parametrize("name", ["hyperprior_tiny", "rnn_tiny"])
def test_conv_dtype_is_recorded_and_the_model_is_float32(tmp_path, name):
  source = tfc_codecs.load(os.path.join(MODELS, name))
  out = train(source.net.codec_name, 0.01 if source.net.needs_lambda else None,
              str(tmp_path / "run"), train_glob=str(IMAGES), patch_size=64,
              batch_size=2, max_steps=2, learning_rate=1e-4,
              init_from=os.path.join(MODELS, name), conv_dtype="bfloat16",
              log_every=1)
  trained = tfc_codecs.load(out)
  assert trained.meta["provenance"]["conv_dtype"] == "bfloat16"
  assert {layer.compute_dtype for layer in _convolutions(trained.net)} == {"float32"}
  image = np.asarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3)), np.uint8)
  assert trained.decompress(trained.compress(image)).shape == image.shape


def test_an_unknown_conv_dtype_is_refused(tmp_path):
  with pytest.raises(CodecError, match="one of"):
    train("hyperprior", 0.01, str(tmp_path / "bad"), train_glob=str(IMAGES),
          conv_dtype="float16")
  assert not os.path.exists(tmp_path / "bad")


def test_learning_rate_warms_up_stays_then_decays_to_a_tenth():
  rates = [training._lr_at(s, 100, 1e-3, 0.8, warmup_steps=9) for s in range(100)]
  assert rates[0] == pytest.approx(1e-4)
  assert all(a < b for a, b in zip(rates[:10], rates[1:10]))
  assert rates[9:80] == [1e-3] * 71
  assert all(a > b for a, b in zip(rates[80:], rates[81:]))
  assert training._lr_at(100, 100, 1e-3, 0.8, warmup_steps=9) == pytest.approx(1e-4)
  assert training._lr_at(0, 100, 1e-3, 0.8) == 1e-3  # No warm-up by default.


@pytest.mark.slow  # Trains a model: > 10 s.
def test_warmup_applies_to_the_run_s_first_steps_and_is_recorded(tmp_path):
  run = str(tmp_path / "run")
  messages = []
  common = dict(train_glob=str(IMAGES), patch_size=32,
                batch_size=2, learning_rate=1e-4, warmup_steps=3, log_every=1,
                init_from=TINY_FACTORIZED, printer=messages.append)
  train("factorized", 0.01, run, max_steps=2, **common)
  out = train("factorized", 0.01, run, max_steps=5, **common)
  rates = [float(m.split("  lr ")[1].split()[0]) for m in messages if "  lr " in m]
  assert rates == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4, 1e-4], rel=0.01)
  assert tfc_codecs.load(out).meta["provenance"]["warmup_steps"] == 3
  with pytest.raises(CodecError, match="warmup_steps"):
    train("factorized", 0.01, str(tmp_path / "other"), max_steps=1,
          **dict(common, warmup_steps=-1))


@pytest.mark.parametrize("model_type,patch_size", [("hyperprior", 32), ("factorized", 24),
                                                   ("rnn", 0)])
def test_patches_the_model_cannot_take_are_refused(tmp_path, model_type, patch_size):
  with pytest.raises(CodecError, match="--patch_size must be a positive multiple of"):
    train(model_type, 0.01, str(tmp_path / "run"),
          train_glob=str(IMAGES),
          patch_size=patch_size, max_steps=1)
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_widening_an_rnn_keeps_what_it_computes_and_lets_new_units_learn(cell):
  """--init_from a narrower rnn embeds it in the wider model: the same codes
  and reconstructions at every iteration, and a gradient reaches the zeroed
  weights from the new units into the old ones."""
  tf.random.set_seed(4)
  narrow = RnnCodec(width=0.0625, cell=cell, reconstruction="scaled", train_iterations=3)
  for variable in narrow.trainable_variables:  # Off their initial (often zero) values.
    variable.assign_add(tf.random.normal(variable.shape, stddev=0.05))
  wide = RnnCodec(width=0.125, cell=cell, reconstruction="scaled", train_iterations=3)
  training._copy_weights(narrow, wide, "narrow")  # pylint: disable=protected-access
  x = tf.random.uniform([1, 32, 48, 3], -0.5, 0.5, seed=1)
  narrow_images, narrow_bits = narrow._iterate(x, 3, training=False)  # pylint: disable=protected-access
  with tf.GradientTape() as tape:
    wide_images, wide_bits = wide._iterate(x, 3, training=False)  # pylint: disable=protected-access
    loss = tf.reduce_mean(tf.square(x - wide_images[-1]))
  assert float(tf.reduce_mean(tf.abs(narrow_images[-1] - narrow_images[0]))) > 1e-3
  for a, b in zip(narrow_images, wide_images):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
  np.testing.assert_allclose([float(b) for b in narrow_bits], [float(b) for b in wide_bits],
                             rtol=1e-5)
  kernel = wide.decoder_out.kernel
  new = np.arange(narrow.decoder_out.kernel.shape[2], kernel.shape[2])
  gradient = tape.gradient(loss, kernel).numpy()[0, 0]
  assert np.all(kernel.numpy()[0, 0, new] == 0) and np.abs(gradient[new]).max() > 0


def test_an_rnn_is_not_started_from_one_of_another_cell():
  lstm, gru = RnnCodec(width=0.0625, cell="lstm"), RnnCodec(width=0.0625, cell="gru")
  with pytest.raises(CodecError, match="with gru cells from one with lstm cells"):
    training._copy_weights(lstm, gru, "lstm")  # pylint: disable=protected-access


@pytest.mark.slow  # Two training runs.
def test_train_widens_an_rnn_and_never_narrows_one(tmp_path):
  source_dir = os.path.join(MODELS, "rnn_tiny")
  common = dict(train_glob=str(IMAGES), patch_size=32, batch_size=1, max_steps=1,
                learning_rate=1e-9, log_every=1)
  out = train("rnn", None, str(tmp_path / "wide"), init_from=source_dir,
              model_config={"width": 0.25}, **common)
  source, wide = tfc_codecs.load(source_dir), tfc_codecs.load(out)
  assert (source.net.config["width"], wide.net.config["width"]) == (0.125, 0.25)
  image = np.asarray(Image.open(PHOTO).convert("RGB"))[:48, :64]
  decoded = [codec.decompress(codec.compress(image, quality=3)) for codec in (source, wide)]
  assert np.abs(decoded[0].astype(int) - decoded[1].astype(int)).max() <= 1
  with pytest.raises(CodecError, match="only widens"):
    train("rnn", None, str(tmp_path / "narrow"), init_from=out,
          model_config={"width": 0.125}, **common)
