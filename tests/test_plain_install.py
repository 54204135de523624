"""The plain install (`pip install tfc_codecs`: the newest TensorFlow on the
package index, no tensorflow-compression), checked against this stack.

A second virtual environment (TFC_CODECS_PLAIN_VENV, default REPO/.venv-plain)
gets `pip install REPO`; it is rebuilt when a newer TensorFlow appears on the
index, and its tfc_codecs is reinstalled from the sources on every run.
TFC_CODECS_PLAIN_TENSORFLOW=2.16.2 (say) checks that version instead. There
`plain_install/checks.py` compresses, decompresses, exports and serves every
shipped model; here its files must equal this stack's `--ops stock` files
byte for byte, and decode to the same pixels (within the contract's ±1
across kernel libraries).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from tfc_codecs import api, container, contract, images, zoo

pytestmark = [pytest.mark.slow, pytest.mark.plain_install]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("TFC_CODECS_PLAIN_VENV") or os.path.join(REPO, ".venv-plain")
IMAGE = os.path.join(REPO, "testdata", "images", "bsds_crop_0.png")
CHECKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plain_install", "checks.py")
PYTHON = os.path.join(VENV, "bin", "python")
CLI = os.path.join(VENV, "bin", "tfc_codecs")


def _run(command, **kwargs) -> subprocess.CompletedProcess:
  return subprocess.run(command, capture_output=True, text=True, **kwargs)


def _newest_tensorflow() -> str:
  listing = _run([sys.executable, "-m", "pip", "index", "versions", "tensorflow"], check=True)
  return re.search(r"tensorflow \(([^)]+)\)", listing.stdout).group(1)


def _installed_tensorflow() -> str:
  if not os.path.isfile(PYTHON):
    return ""
  found = _run([PYTHON, "-c", "import importlib.metadata as m; print(m.version('tensorflow'))"])
  return found.stdout.strip() if found.returncode == 0 else ""


@pytest.fixture(scope="module")
def tensorflow_version() -> str:
  """The TensorFlow version the plain install gets (the newest, unless pinned)."""
  return os.environ.get("TFC_CODECS_PLAIN_TENSORFLOW") or _newest_tensorflow()


@pytest.fixture(scope="module")
def plain_venv(tensorflow_version):
  """The plain install's python, with that TensorFlow and this source."""
  start = time.perf_counter()
  if _installed_tensorflow() != tensorflow_version:
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
  # A local directory is always rebuilt and reinstalled; missing dependencies are added.
  subprocess.run([PYTHON, "-m", "pip", "install", "-q", f"tensorflow=={tensorflow_version}",
                  REPO], check=True)
  print(f"plain install ready in {time.perf_counter() - start:.0f} s")
  return PYTHON


@pytest.fixture(scope="module")
def plain_run(plain_venv, tmp_path_factory):
  """checks.py's report and output directory."""
  out = tmp_path_factory.mktemp("plain")
  env = dict(os.environ, TFC_CODECS_CACHE=str(out / "cache"))
  done = _run([plain_venv, CHECKS, IMAGE, str(out)], env=env, cwd=str(out), timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  report = json.loads(done.stdout.strip().splitlines()[-1])
  print(json.dumps(report, indent=1))
  return report, out


def test_plain_install_has_newest_tensorflow_and_never_imports_tfc(plain_venv, plain_run,
                                                                   tensorflow_version):
  report, _ = plain_run
  assert report["tensorflow"] == tensorflow_version
  assert not report["tfc_imported"]
  assert _run([plain_venv, "-c", "import tensorflow_compression"]).returncode != 0
  assert {m["ops"] for m in report["models"].values()} == {"stock"}
  assert sorted(report["models"]) == zoo.family_names()


@pytest.mark.parametrize("family", zoo.family_names())
def test_files_equal_this_stacks_stock_files_and_decode_alike(plain_run, family):
  _, out = plain_run
  image, _ = images.read_image(IMAGE)
  with open(out / f"{family}.tfci", "rb") as f:
    plain_file = f.read()
  codec = api.load(family, ops="stock")
  assert plain_file == codec.compress(image)
  here = api.load_for(plain_file).decompress(plain_file)
  there = np.load(out / f"{family}.npy")
  assert contract.max_pixel_difference(here, there) <= contract.PIXEL_TOLERANCE_ACROSS_KERNELS


def test_served_files_equal_api_files(plain_run):
  _, out = plain_run
  files = [(out / name).read_bytes()
           for name in (f"{zoo.DEFAULT_MODEL}.tfci", "served-rest.tfci", "served-grpc.tfci")]
  assert files[0] == files[1] == files[2]


def test_cli_commands_and_one_line_errors(plain_venv, tmp_path):
  env = dict(os.environ, TFC_CODECS_CACHE=str(tmp_path / "cache"))
  compressed = _run([CLI, "compress", IMAGE, "--output", str(tmp_path / "a.tfci")], env=env)
  assert compressed.returncode == 0, compressed.stderr
  decompressed = _run([CLI, "decompress", str(tmp_path / "a.tfci"), "--output",
                       str(tmp_path / "a.png")], env=env)
  assert decompressed.returncode == 0, decompressed.stderr
  data = (tmp_path / "a.tfci").read_bytes()
  assert data == api.load(ops="stock").compress(images.read_image(IMAGE)[0])
  decoded, _ = images.read_image(str(tmp_path / "a.png"))
  assert contract.max_pixel_difference(decoded, api.load_for(data).decompress(data)) <= (
      contract.PIXEL_TOLERANCE_ACROSS_KERNELS)
  info = _run([CLI, "info", str(tmp_path / "a.tfci")], env=env)
  assert container.CODER_NAMES[container.CODER_STOCK] in info.stdout, info.stdout

  data_dir = tmp_path / "images"
  data_dir.mkdir()
  shutil.copy(IMAGE, data_dir)
  for model, output in (("hyperprior", "ours.json"), ("webp", "webp.json")):
    evaluated = _run([CLI, "evaluate", "--model", model, "--quality",
                      "2,4" if model == "hyperprior" else "40,80", "--data", str(data_dir),
                      "--output", str(tmp_path / output)], env=env)
    assert evaluated.returncode == 0, evaluated.stderr
  compared = _run([CLI, "bdrate", str(tmp_path / "ours.json"), str(tmp_path / "ours.json")],
                  env=env)  # (One small image: WebP's curve need not overlap ours.)
  assert compared.returncode == 0 and "BD-rate +0.00%" in compared.stdout, compared.stderr
  plotted = _run([CLI, "plot", str(tmp_path / "ours.json"), str(tmp_path / "webp.json"),
                  "--output", str(tmp_path / "rd.png")], env=env)
  assert plotted.returncode == 0 and (tmp_path / "rd.png").stat().st_size > 0, plotted.stderr

  range_coded = tmp_path / "range.tfci"
  range_coded.write_bytes(api.load(ops="tfc").compress(images.read_image(IMAGE)[0]))
  trained = os.path.join(REPO, "testdata", "models", "hyperprior_tiny")
  for command in (["train", "--model_type", "hyperprior", "--train_dir", str(tmp_path / "t")],
                  ["compress", IMAGE, "--ops", "tfc", "--output", str(tmp_path / "b.tfci")],
                  ["compress", IMAGE, "--model", trained, "--output", str(tmp_path / "c.tfci")],
                  ["decompress", str(range_coded), "--output", str(tmp_path / "d.png")]):
    failed = _run([CLI, *command], env=env)
    assert failed.returncode == 1, (command, failed.stderr)
    assert len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "tfc_codecs[train]" in failed.stderr, failed.stderr
  assert not any(os.path.exists(tmp_path / name) for name in ("b.tfci", "c.tfci", "d.png"))
