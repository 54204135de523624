"""The shipped models' stock-op exports (`shipped_exports`): current with
their weights and the code, complete, and run without tensorflow-compression.

Regenerate them with `python -m tools.build_stock_exports` when
`test_every_zoo_model_ships_a_current_stock_export` fails.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tfc_codecs import api, export, exported_codec, images, model_dir, shipped_exports, zoo
from tfc_codecs.errors import CodecError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = os.path.join(REPO, "testdata", "images", "bsds_crop_1.png")
ZOO_MODELS = sorted({e["path"] for e in zoo.shipped_models() + zoo.retired_models()})


@pytest.mark.slow
@pytest.mark.parametrize("path", ZOO_MODELS, ids=lambda p: os.path.relpath(p, zoo.ZOO_DIR))
def test_every_zoo_model_ships_a_current_stock_export(path):
  """The shipped export compresses to the bytes and decodes to the pixels of
  the model built from its weights by the current code."""
  assert shipped_exports.export_dir(path), f"no stock export: {shipped_exports.REGENERATE}"
  assert shipped_exports.info(path)["fingerprint"] == model_dir.read_meta(path)["fingerprint"]
  image, _ = images.read_image(IMAGE)
  shipped = api.load(path, ops="stock")
  built = api.build(path, "stock")
  assert isinstance(shipped, exported_codec.ExportedCodec)
  data = built.compress(image)
  assert shipped.compress(image) == data, f"stale: {shipped_exports.REGENERATE}"
  np.testing.assert_array_equal(shipped.decompress(data), built.decompress(data))


def _copy_model(tmp_path, relative="hyperprior/vr"):
  source = os.path.join(zoo.ZOO_DIR, relative)
  target = tmp_path / "model"
  shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.md", "*.jsonl"))
  return str(target)


def test_materialize_refuses_weights_the_export_was_not_made_from(tmp_path):
  path = _copy_model(tmp_path)
  weights = os.path.join(path, model_dir.WEIGHTS_NPZ)
  with np.load(weights) as npz:
    arrays = {name: npz[name] for name in npz.files}
  name = next(n for n, a in arrays.items() if a.dtype == np.float16 and a.size > 1)
  arrays[name] = arrays[name] + np.float16(1)
  np.savez(weights, **arrays)
  with pytest.raises(CodecError, match="does not match its weights"):
    shipped_exports.materialize(path, str(tmp_path / "saved"))


def test_materialize_refuses_an_export_of_another_model(tmp_path):
  path = _copy_model(tmp_path)
  model_dir.record(path, "fingerprint", "0" * 16)
  with pytest.raises(CodecError, match="of another model"):
    shipped_exports.materialize(path, str(tmp_path / "saved"))


def test_export_of_a_shipped_model_is_its_shipped_export(tmp_path):
  """`tfc_codecs export` (stock) of a shipped model writes the shipped graph
  and the weights: the same files as the stock path compresses."""
  target = export.export("hyperprior", str(tmp_path))
  shipped = os.path.join(zoo.resolve("hyperprior"), shipped_exports.EXPORT_DIR)
  with open(os.path.join(target, "saved_model.pb"), "rb") as a, \
      open(os.path.join(shipped, "saved_model.pb"), "rb") as b:
    assert a.read() == b.read()
  image, _ = images.read_image(IMAGE)
  assert (api.load(target).compress(image, 3)
          == api.load("hyperprior", ops="stock").compress(image, 3))


@pytest.mark.slow
def test_stock_path_never_imports_tensorflow_compression():
  script = (
      "import sys, numpy as np, tfc_codecs\n"
      "from tfc_codecs import images\n"
      f"image, _ = images.read_image({IMAGE!r})\n"
      "data = tfc_codecs.compress(image, 'hyperprior', ops='stock')\n"
      "assert tfc_codecs.decompress(data).shape == image.shape\n"
      "assert 'tensorflow_compression' not in sys.modules, 'imported'\n")
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_without_tfc_switch_acts_as_the_plain_install(tmp_path):
  """TFC_CODECS_WITHOUT_TFC=1: stock by default, one-line errors for the rest."""
  env = dict(os.environ, TFC_CODECS_WITHOUT_TFC="1")
  cli = [sys.executable, "-m", "tfc_codecs.cli"]
  done = subprocess.run(cli + ["compress", IMAGE, "--model", "hyperprior", "--output",
                               str(tmp_path / "a.tfci")], capture_output=True, text=True, env=env)
  assert done.returncode == 0, done.stderr
  assert api.load_for((tmp_path / "a.tfci").read_bytes()).ops == "stock"
  for command in (["train", "--model_type", "hyperprior", "--train_dir", str(tmp_path / "t")],
                  ["compress", IMAGE, "--ops", "tfc", "--output", str(tmp_path / "b.tfci")]):
    failed = subprocess.run(cli + command, capture_output=True, text=True, env=env)
    assert failed.returncode == 1 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert "tfc_codecs[train]" in failed.stderr
