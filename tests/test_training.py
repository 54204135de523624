"""Fine-tuning a model on one's own images (--init_from)."""

import os

import numpy as np
import pytest

import tfc_codecs
from tfc_codecs import training
from tfc_codecs.errors import CodecError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FACTORIZED = os.path.join(ROOT, "testdata", "models", "factorized_tiny")


def test_init_from_starts_at_the_given_model(tmp_path):
  out = training.train(
      "factorized", 0.01, str(tmp_path / "run"),
      train_glob=os.path.join(ROOT, "testdata", "images"), patch_size=32,
      batch_size=2, max_steps=1, learning_rate=1e-9, init_from=TINY_FACTORIZED,
      log_every=1, printer=lambda _: None)
  source = tfc_codecs.load(TINY_FACTORIZED)
  tuned = tfc_codecs.load(out)
  assert tuned.net.config == source.net.config
  assert tuned.meta["provenance"]["init_from"] == TINY_FACTORIZED
  for a, b in zip(tuned.net.trainable_weights, source.net.trainable_weights):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-3, atol=1e-6)
  image = np.asarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3)), np.uint8)
  assert tuned.decompress(tuned.compress(image)).shape == image.shape


def test_resume_keeps_the_run_whatever_init_from_now_names(tmp_path):
  """A resumed run continues from its checkpoint even if --init_from now
  resolves to a different model (e.g. the shipped model was replaced), and a
  resume that names no model options takes the stored ones."""
  run = str(tmp_path / "run")
  common = dict(train_glob=os.path.join(ROOT, "testdata", "images"), patch_size=32,
                batch_size=2, learning_rate=1e-4, log_every=1, printer=lambda _: None)
  training.train("factorized", 0.01, run, max_steps=1, init_from=TINY_FACTORIZED, **common)
  first = tfc_codecs.load(os.path.join(run, "model"))
  messages = []
  out = training.train("factorized", 0.01, run, max_steps=2,
                       init_from=str(tmp_path / "no such model"),
                       **dict(common, printer=messages.append))
  assert any("resuming" in m for m in messages), messages
  assert tfc_codecs.load(out).net.config == first.net.config
  out = training.train("factorized", 0.01, run, max_steps=3, **common)
  resumed = tfc_codecs.load(out)
  assert resumed.meta["provenance"]["steps"] == 3
  assert resumed.net.config == first.net.config
  # The run's provenance keeps the model it started from.
  assert resumed.meta["provenance"]["init_from"] == TINY_FACTORIZED


def test_resume_accepts_the_run_s_own_model_options_only(tmp_path):
  """Repeating the run's model options on resume is fine; changing one is
  refused (the checkpoint holds another model)."""
  run = str(tmp_path / "run")
  common = dict(train_glob=os.path.join(ROOT, "testdata", "images"), patch_size=32,
                batch_size=2, learning_rate=1e-4, log_every=1, printer=lambda _: None)
  options = dict(num_filters=8, latent_filters=12)
  training.train("factorized", 0.01, run, max_steps=1, model_config=options, **common)
  out = training.train("factorized", 0.01, run, max_steps=2,
                       model_config=dict(num_filters=8), **common)
  assert tfc_codecs.load(out).net.config["latent_filters"] == 12
  for changed in (dict(num_filters=16), dict(options, latent_filters=16)):
    with pytest.raises(CodecError, match="different model"):
      training.train("factorized", 0.01, run, max_steps=3, model_config=changed, **common)
  with pytest.raises(CodecError, match="different model"):
    training.train("factorized", 0.02, run, max_steps=3, **common)
