"""SIGKILL at any moment leaves only complete outputs and resumable training."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import CLI_SCRIPT, MODEL_DIRS, REPO, subprocess_env
from tfc_codecs import container

pytestmark = pytest.mark.slow  # CLI subprocesses killed mid-run.

NUM_IMAGES = 12


def start_cli(*args, cwd=REPO):
  return subprocess.Popen([sys.executable, str(CLI_SCRIPT)] + [str(a) for a in args],
                          cwd=str(cwd), env=subprocess_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)


def kill_after_outputs(process, folder, suffix, count, delay):
  """SIGKILLs `process` `delay` s after `count` outputs ending in `suffix` exist."""
  deadline = time.monotonic() + 300
  while len([n for n in os.listdir(folder) if n.endswith(suffix)]) < count:
    assert process.poll() is None, "finished before it could be killed"
    assert time.monotonic() < deadline
    time.sleep(0.005)
  time.sleep(delay)
  process.send_signal(signal.SIGKILL)
  process.wait()


def test_sigkill_mid_batch_leaves_only_complete_files(tmp_path, photos):
  rng = np.random.default_rng(0)
  sources = []
  for i in range(NUM_IMAGES):
    image = np.tile(list(photos.values())[i % 4], (3, 3, 1))  # 288x384
    image = np.clip(image + rng.integers(-3, 4, image.shape), 0, 255).astype(np.uint8)
    sources.append(tmp_path / f"img{i:02d}.png")
    Image.fromarray(image).save(sources[-1])
  model = MODEL_DIRS["hyperprior"]
  for trial, delay in enumerate((0., 0.013, 0.031)):
    folder = tmp_path / f"trial{trial}"
    folder.mkdir()
    for source in sources:
      os.link(source, folder / source.name)
    inputs = sorted(folder.glob("*.png"))
    compress = start_cli("compress", "--model", model, *inputs)
    kill_after_outputs(compress, folder, ".tfci", 2 + trial, delay)
    written = sorted(folder.glob("*.tfci"))
    assert 2 + trial <= len(written) < NUM_IMAGES
    for path in written:
      stream = container.parse(path.read_bytes(), 1 << 24)
      assert stream.complete and (stream.height, stream.width) == (288, 384)
    decompress = start_cli("decompress", "--model", model, *written)
    kill_after_outputs(decompress, folder, ".tfci.png", 1, delay)
    for path in folder.glob("*.tfci.png"):
      with Image.open(path) as image:
        image.load()
        assert image.size == (384, 288)
    assert sorted(n for n in os.listdir(folder) if not n.endswith((".png", ".tfci"))) == []


def test_sigkill_mid_checkpoint_resumes_from_the_last_good_one(tmp_path):
  """Training that saves a checkpoint every step, killed at several moments,
  resumes each time and finally writes its model."""
  train = ["train", "--model_type", "factorized", "--num_filters", "8",
           "--latent_filters", "8", "--lambda", "0.01", "--train_glob",
           REPO / "testdata" / "images", "--patch_size", "32", "--batch_size", "2",
           "--log_every", "1", "--checkpoint_minutes", "0", "--train_dir", tmp_path / "run"]
  checkpoints = tmp_path / "run" / "checkpoints"
  for delay in (0.05, 0.2, 0.0):
    process = start_cli(*train, "--max_steps", "100000")
    deadline = time.monotonic() + 300
    before = len(list(checkpoints.glob("*.index"))) if checkpoints.exists() else 0
    while not checkpoints.exists() or len(list(checkpoints.glob("*"))) <= before + 1:
      assert process.poll() is None and time.monotonic() < deadline
      time.sleep(0.005)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
  result = subprocess.run(
      [sys.executable, str(CLI_SCRIPT)] + [str(a) for a in train] + ["--max_steps", "1"],
      cwd=str(REPO), env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr
  assert "resumed from" in result.stdout + result.stderr
  assert (tmp_path / "run" / "model" / "model.json").exists()
