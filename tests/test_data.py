"""The training data pipeline and the checks `training.train` makes up front."""

import os
import shutil
import struct
import zlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import IMAGES, MODELS
import tfc_codecs
from tfc_codecs import data, images, training
from tfc_codecs.errors import CodecError


@pytest.fixture(scope="module")
def image_dir(repo_root):
  return str(repo_root / "testdata" / "images")


def check_batches(dataset, batch_size, patch_size, count=3):
  batches = [b.numpy() for b in dataset.take(count)]
  for batch in batches:
    assert batch.shape == (batch_size, patch_size, patch_size, 3)
    assert batch.dtype == np.float32
    assert batch.min() >= 0 and batch.max() <= 255
    assert np.array_equal(batch, np.round(batch))  # Integer sample values.
    assert batch.std() > 1  # Image content, not a constant.
  return batches


def test_folder(image_dir):
  batches = check_batches(data.training_dataset(32, 2, train_glob=image_dir, seed=1), 2, 32)
  patches = np.concatenate(batches)
  assert len({p.tobytes() for p in patches}) == len(patches)  # Random crops.


def test_glob_pattern(image_dir):
  pattern = os.path.join(image_dir, "bsds_crop_[01].png")
  assert [os.path.basename(f) for f in images.list_images(pattern)] == [
      "bsds_crop_0.png", "bsds_crop_1.png"]
  check_batches(data.training_dataset(16, 3, train_glob=pattern), 3, 16)


def test_patch_larger_than_images(image_dir):
  # The photos are 96x128: a 128 patch needs upscaling, not a crash.
  check_batches(data.training_dataset(128, 1, train_glob=image_dir, min_scale=0.5),
                1, 128, count=2)


def test_no_matching_files(tmp_path):
  (tmp_path / "notes.txt").write_text("not an image")
  (tmp_path / "dir.png").mkdir()
  for pattern in (str(tmp_path), str(tmp_path / "*.png"), str(tmp_path / "nothing*"),
                  str(tmp_path / "missing_folder")):
    with pytest.raises(CodecError, match="no readable images"):
      data.training_dataset(32, 2, train_glob=pattern)


def test_unreadable_files_are_skipped(tmp_path, image_dir):
  shutil.copy(os.path.join(image_dir, "bsds_crop_0.png"), tmp_path / "good.png")
  (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
  ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
  (tmp_path / "bomb.png").write_bytes(
      b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
      + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
  assert images.list_images(str(tmp_path)) == [str(tmp_path / "good.png")]
  check_batches(data.training_dataset(32, 2, train_glob=str(tmp_path)), 2, 32, count=2)


def test_exactly_one_source(image_dir, tfds_dir):
  with pytest.raises(CodecError, match="exactly one"):
    data.training_dataset(32, 2)
  with pytest.raises(CodecError, match="exactly one"):
    data.training_dataset(32, 2, train_glob=image_dir, tfds_dataset="clic")
  with pytest.raises(CodecError, match="apply to --tfds_dataset"):
    data.training_dataset(32, 2, train_glob=image_dir, tfds_data_dir=tfds_dir)


def _refused_before_writing(tmp_path, match, model_type="factorized", **settings):
  run = tmp_path / "run"
  with pytest.raises(CodecError, match=match):
    training.train(training.TrainConfig(model_type, str(run), lmbda=0.01, max_steps=1,
                                        **settings), printer=lambda _: None)
  assert not run.exists()


def test_ms_ssim_needs_large_patches(tmp_path, image_dir):
  _refused_before_writing(tmp_path, str(training.MS_SSIM_MIN_PATCH), train_glob=image_dir,
                          distortion="ms-ssim", patch_size=training.MS_SSIM_MIN_PATCH - 1)


def test_unknown_distortion(tmp_path, image_dir):
  _refused_before_writing(tmp_path, "--distortion must be one of", train_glob=image_dir,
                          distortion="l1")


@pytest.mark.parametrize("model_type", ["hyperprior-vr", "rnn"])
def test_distortions_a_codec_does_not_train_with_are_refused(tmp_path, image_dir, model_type):
  _refused_before_writing(tmp_path, f"{model_type} trains with --distortion mse only",
                          model_type, train_glob=image_dir, distortion="ms-ssim",
                          patch_size=256)


def test_a_missing_data_source_is_refused_before_the_run_starts(tmp_path):
  _refused_before_writing(tmp_path, "no readable images", train_glob=str(tmp_path / "none"))


# TFDS: a tiny dataset built into a temporary data directory (no download).
class TinyPhotos(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """The test photos, as RGB and grayscale images, in splits "train" and "test"."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "photo": tfds.features.Image(shape=(None, None, 3)),
        "gray": tfds.features.Image(shape=(None, None, 1)),
        "label": tfds.features.ClassLabel(num_classes=2)}))

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {"train": self._generate_examples(4), "test": self._generate_examples(2)}

  def _generate_examples(self, count):
    for i, path in enumerate(sorted(IMAGES.glob("*.png"))[:count]):
      image, _ = images.read_image(str(path))
      gray = np.round(image.mean(axis=2, keepdims=True)).astype(np.uint8)
      yield i, {"photo": image, "gray": gray, "label": i % 2}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  """A TFDS data directory holding the built dataset "tiny_photos"."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  TinyPhotos(data_dir=data_dir).download_and_prepare()
  return data_dir


@pytest.mark.parametrize("split,key,count", [("train", "photo", 4), ("test", "gray", 2)])
def test_tfds_dataset(tfds_dir, split, key, count):
  """Read as a user's built dataset is (its builder's code is not registered)."""
  batches = check_batches(data.training_dataset(
      32, 2, tfds_dataset="tiny_photos", tfds_data_dir=tfds_dir, tfds_split=split,
      tfds_image_key=key, seed=1), 2, 32, count=count)
  if key == "gray":
    for patch in np.concatenate(batches):
      assert np.array_equal(patch[..., 0], patch[..., 1])
      assert np.array_equal(patch[..., 0], patch[..., 2])


@pytest.mark.parametrize("settings,message", [
    (dict(tfds_dataset="no_such_dataset"), "no TFDS dataset 'no_such_dataset' in"),
    (dict(tfds_dataset="tiny_photos", tfds_data_dir="EMPTY"), "no TFDS dataset 'tiny_photos'"),
    (dict(tfds_dataset="mnist", tfds_data_dir="EMPTY"), "'mnist' is not built in .*download"),
    (dict(tfds_dataset="tiny_photos", tfds_split="validation"),
     "no split 'validation' \\(it has test, train;"),
    (dict(tfds_dataset="tiny_photos", tfds_image_key="image"),
     "no feature 'image' \\(it has gray, label, photo\\); choose one with --tfds_image_key"),
    (dict(tfds_dataset="tiny_photos", tfds_image_key="label"),
     "feature 'label' of TFDS dataset 'tiny_photos' is not an 8-bit RGB or grayscale image"),
])
def test_tfds_errors_say_what_does_not_fit_in_one_line(tfds_dir, tmp_path, settings, message):
  settings = dict(dict(tfds_data_dir=tfds_dir, tfds_image_key="photo"), **settings)
  if settings["tfds_data_dir"] == "EMPTY":
    settings["tfds_data_dir"] = str(tmp_path)
  with pytest.raises(CodecError, match=message) as error:
    data.training_dataset(32, 2, **settings)
  assert "\n" not in str(error.value)


@pytest.mark.slow  # Trains a model: > 10 s.
def test_training_on_a_tfds_dataset(tfds_dir, tmp_path):
  config = training.TrainConfig(
      "factorized", str(tmp_path / "run"), lmbda=0.01, tfds_dataset="tiny_photos",
      tfds_data_dir=tfds_dir, tfds_split="test", tfds_image_key="photo", patch_size=32,
      batch_size=2, max_steps=2, log_every=1, init_from=str(MODELS / "factorized_tiny"))
  lines = []
  out = training.train(config, printer=lines.append)
  assert [line.split()[:2] for line in lines if line.startswith("step")] == [
      ["step", "1"], ["step", "2"]]
  provenance = tfc_codecs.load(out).meta["provenance"]
  assert provenance["steps"] == 2
  assert {k: provenance[k] for k in ("tfds_dataset", "tfds_data_dir", "tfds_split",
                                     "tfds_image_key")} == dict(
      tfds_dataset="tiny_photos", tfds_data_dir=tfds_dir, tfds_split="test",
      tfds_image_key="photo")


@pytest.mark.slow  # CLI subprocesses.
def test_train_on_a_tfds_dataset_from_the_cli(run_cli, tfds_dir, tmp_path):
  flags = ["train", "--model_type", "factorized", "--lambda", "0.01", "--num_filters", "8",
           "--patch_size", "32", "--batch_size", "2", "--max_steps", "2", "--log_every", "1",
           "--tfds_dataset", "tiny_photos", "--tfds_data_dir", tfds_dir]
  missing = run_cli(*flags, "--train_dir", tmp_path / "missing")
  assert missing.returncode == 1
  assert missing.stderr.strip().splitlines() == [
      "tfc_codecs: error: TFDS dataset 'tiny_photos' has no feature 'image' (it has "
      "gray, label, photo); choose one with --tfds_image_key"]
  assert not (tmp_path / "missing").exists()
  result = run_cli(*flags, "--tfds_image_key", "gray", "--train_dir", tmp_path / "run")
  assert result.returncode == 0, result.stderr
  assert "step 2 " in result.stdout and (tmp_path / "run" / "model" / "model.json").exists()

