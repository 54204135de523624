"""The training data pipeline and the checks `training.train` makes up front."""

import os
import shutil
import struct
import zlib

import numpy as np
import pytest

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


def test_exactly_one_source(image_dir):
  with pytest.raises(CodecError):
    data.training_dataset(32, 2)
  with pytest.raises(CodecError):
    data.training_dataset(32, 2, train_glob=image_dir, tfds_dataset="clic")


def test_ms_ssim_needs_large_patches(tmp_path, image_dir):
  run = tmp_path / "run"
  with pytest.raises(CodecError, match=str(training.MS_SSIM_MIN_PATCH)):
    training.train("factorized", 0.01, str(run), train_glob=image_dir,
                   distortion="ms-ssim", patch_size=training.MS_SSIM_MIN_PATCH - 1,
                   max_steps=1)
  assert not run.exists()  # Refused before anything was written.


def test_unknown_distortion(tmp_path, image_dir):
  with pytest.raises(CodecError, match="distortion"):
    training.train("factorized", 0.01, str(tmp_path / "run"), train_glob=image_dir,
                   distortion="l1", max_steps=1)
  assert not (tmp_path / "run").exists()
