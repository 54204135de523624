"""SavedModel exports: the same bytes as the library, in a fresh process, with
TF Serving's signature conventions; damaged files fail inside the graph.
Stock exports (the default) run where tensorflow_compression was never
imported and contain only stock ops; hyperprior-vr is exported with --ops tfc."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfc_codecs
from tfc_codecs import container, export, exported_codec, images
from tfc_codecs.contract import LoadedCodec
from tfc_codecs.errors import CodecError
from tfc_codecs.evaluation import evaluate, metrics

from conftest import PHOTO_PATHS, REPO, TESTDATA, subprocess_env

# Exporting the tiny models alone takes minutes; most tests also run fresh processes.
pytestmark = pytest.mark.slow

MODELS = {"factorized": (TESTDATA / "models" / "factorized_tiny", None, "stock"),
          "hyperprior": (TESTDATA / "models" / "hyperprior_tiny", None, "stock"),
          "hyperprior-vr": (TESTDATA / "models" / "hyperprior_vr_tiny", 2, "tfc"),
          "channelwise-vr": (TESTDATA / "models" / "channelwise_vr_tiny", 2, "stock"),
          "rnn": (TESTDATA / "models" / "rnn_tiny", 3, "stock")}
STOCK = sorted(name for name, (_, _, ops) in MODELS.items() if ops == "stock")


def library(name):
  """The library codec that writes what export `name` writes."""
  return tfc_codecs.load(str(MODELS[name][0]), ops=MODELS[name][2])

FRESH_PROCESS = """
import sys
import tensorflow as tf
import tensorflow_compression  # Registers the range-coder ops; nothing else.
loaded = tf.saved_model.load(sys.argv[1])
images = tf.constant([open(p, "rb").read() for p in sys.argv[3:]])
inputs = dict(image_bytes=images)
if sys.argv[2] != "0":
  inputs["quality"] = tf.fill([len(sys.argv) - 3], int(sys.argv[2]))
files = loaded.signatures["compress"](**inputs)["bitstream_bytes"]
pngs = loaded.signatures["decompress"](bitstream_bytes=files)["png_bytes"]
for f, p in zip(files.numpy(), pngs.numpy()):
  print(f.hex(), p.hex())
"""


# Plain TensorFlow: tensorflow_compression is never imported, so its ops are not
# registered; every op type of every graph must be a registered stock op.
STOCK_PROCESS = """
import json, sys
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
results = {}
for spec in json.loads(sys.argv[1]):
  loaded = tf.saved_model.load(spec["path"])
  op_types = set()
  for signature in loaded.signatures.values():
    graph = signature.graph
    op_types |= {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
      op_types |= {node.op for node in function.node_def}
  saved = saved_model_pb2.SavedModel()
  with open(spec["path"] + "/saved_model.pb", "rb") as f:
    saved.ParseFromString(f.read())
  for meta_graph in saved.meta_graphs:
    op_types |= {node.op for node in meta_graph.graph_def.node}
    for function in meta_graph.graph_def.library.function:
      op_types |= {node.op for node in function.node_def}
  images = tf.constant([open(p, "rb").read() for p in spec["images"]])
  inputs = dict(image_bytes=images)
  if spec["quality"]:
    inputs["quality"] = tf.fill([len(spec["images"])], spec["quality"])
  files = loaded.signatures["compress"](**inputs)["bitstream_bytes"]
  pngs = loaded.signatures["decompress"](bitstream_bytes=files)["png_bytes"]
  one = loaded.signatures["decompress_image"](bitstream_bytes=files[:1])["image"]
  results[spec["name"]] = dict(
      files=[f.hex() for f in files.numpy()], pngs=[p.hex() for p in pngs.numpy()],
      image_shape=list(one.shape), op_types=sorted(op_types),
      unregistered=sorted(t for t in op_types if op_def_registry.get(t) is None))
assert "tensorflow_compression" not in sys.modules
print(json.dumps(results))
"""


def doc_commands(prefixes):
  """The commands (continuation lines joined) in docs/serving.md's sh blocks
  that start with one of `prefixes`, in order."""
  text = (REPO / "docs" / "serving.md").read_text()
  return [line for block in re.findall(r"```sh\n(.*?)```", text, re.S)
          for line in block.replace("\\\n", " ").splitlines() if line.startswith(prefixes)]


def tfc_op_types():
  """The op types tensorflow-compression registers."""
  from tensorflow.python.framework import op_def_registry  # pylint: disable=import-outside-toplevel
  from tensorflow_compression.python.ops import gen_ops  # pylint: disable=import-outside-toplevel
  return {name for name in dir(gen_ops) if name[:1].isupper() and op_def_registry.get(name)}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  base = tmp_path_factory.mktemp("exports")
  return base, {name: (export.export(str(path), str(base), ops=ops), quality)
                for name, (path, quality, ops) in MODELS.items()}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fresh_process_serving_signatures_match_the_library(exports, name):
  path, quality = exports[1][name]
  out = subprocess.run(
      [sys.executable, "-c", FRESH_PROCESS, path, str(quality or 0)]
      + [str(p) for p in PHOTO_PATHS[:2]],
      capture_output=True, text=True, env=subprocess_env(), check=True).stdout
  codec = library(name)
  for line, photo_path in zip(out.splitlines(), PHOTO_PATHS[:2]):
    file_hex, png_hex = line.split()
    image = images.read_image(str(photo_path))[0]
    expected = codec.compress(image, quality)
    assert bytes.fromhex(file_hex) == expected
    assert bytes.fromhex(png_hex) == images.encode_png(codec.decompress(expected))


def test_stock_exports_run_without_tensorflow_compression(exports):
  """Each codec's stock export, in a process that never imports
  tensorflow_compression: only stock ops, and bit-exactly the library's
  stock-coded files and decoded images (which the range-coder build of the
  library decodes identically)."""
  specs = [dict(name=name, path=exports[1][name][0], quality=exports[1][name][1] or 0,
                images=[str(p) for p in PHOTO_PATHS[:2]]) for name in STOCK]
  out = subprocess.run([sys.executable, "-c", STOCK_PROCESS, json.dumps(specs)],
                       capture_output=True, text=True, env=subprocess_env(), check=True)
  results = json.loads(out.stdout.splitlines()[-1])
  tfc_ops = tfc_op_types()
  assert {"EntropyEncodeIndex", "EntropyDecodeIndex", "CreateRangeEncoder"} <= tfc_ops
  for name in STOCK:
    result = results[name]
    assert result["unregistered"] == [] and not set(result["op_types"]) & tfc_ops, name
    assert {"While", "SearchSorted"} & set(result["op_types"]), name  # The rANS loop.
    codec, range_codec = library(name), tfc_codecs.load(str(MODELS[name][0]))
    quality = MODELS[name][1]
    for file_hex, png_hex, photo_path in zip(result["files"], result["pngs"], PHOTO_PATHS):
      image = images.read_image(str(photo_path))[0]
      expected = codec.compress(image, quality)
      assert bytes.fromhex(file_hex) == expected, name
      assert container.parse(expected, 1 << 20, True).coder == container.CODER_STOCK
      decoded = range_codec.decompress(expected)
      np.testing.assert_array_equal(decoded, codec.decompress(expected))
      assert bytes.fromhex(png_hex) == images.encode_png(decoded), name
    assert result["image_shape"] == [1, 96, 128, 3]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_load_accepts_exports(exports, name, photo):
  path, quality = exports[1][name]
  exported = tfc_codecs.load(path)
  assert isinstance(exported, exported_codec.ExportedCodec)
  codec = library(name)
  assert isinstance(exported, LoadedCodec)
  for key in ("codec_name", "fingerprint", "rate_kind", "num_qualities", "default_quality",
              "ops", "max_pixels"):
    assert getattr(exported, key) == getattr(codec, key), key
  data = exported.compress(photo, quality)
  assert data == codec.compress(photo, quality)
  np.testing.assert_array_equal(exported.decompress(data), codec.decompress(data))
  # A model base (without the version) loads its newest version.
  assert tfc_codecs.load(os.path.dirname(path)).source == path


def test_damaged_files_fail_in_the_graph(exports, photo):
  path, _ = exports[1]["hyperprior"]
  exported = tfc_codecs.load(path)
  data = exported.compress(photo)
  stream = container.parse(data, 1 << 20)
  header = stream.header_bytes() - 8 * len(stream.payloads)
  cases = {"truncated": data[:-3], "trailing": data + b"x", "too short": b"TFCI",
           "header checksum": data[:header - 9] + bytes([data[header - 9] ^ 1])
           + data[header - 8:],
           "payload checksum": data[:header + 6] + bytes([data[header + 6] ^ 1])
           + data[header + 7:],
           "of this hyperprior model": tfc_codecs.load(
               str(MODELS["rnn"][0])).compress(photo, 1)}
  for expected, bad in cases.items():
    with pytest.raises(CodecError, match=expected):
      exported.decompress(bad)
  huge = container.serialize(container.Bitstream(
      codec="hyperprior", fingerprint=stream.fingerprint, height=60000, width=60000,
      payloads=stream.payloads, coder=stream.coder))
  with pytest.raises(CodecError, match="limit"):
    exported.decompress(huge)
  assert np.array_equal(exported.decompress(data), tfc_codecs.load(
      str(MODELS["hyperprior"][0])).decompress(data))  # Still serving.


def test_non_image_bytes_fail_with_a_clear_message(exports):
  loaded = tf.saved_model.load(exports[1]["hyperprior"][0])
  for bad in (b"not an image at all", b"GIF89a" + bytes(32)):
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be PNG or JPEG"):
      loaded.signatures["serving_default"](image_bytes=tf.constant([bad]))


def test_variable_rate_export_checks_quality(exports, photo):
  exported = tfc_codecs.load(exports[1]["hyperprior-vr"][0])
  with pytest.raises(CodecError, match="quality"):
    exported.compress(photo, 99)


@pytest.mark.parametrize("name", ["channelwise-vr", "rnn"])
def test_quality_is_optional_and_defaults_to_the_models(exports, name, photo):
  """serving_default takes only images; compress and compress_image take an
  optional quality (a SignatureDef default); without one, the model's default
  quality, as the library's compress uses."""
  path, _ = exports[1][name]
  codec = library(name)
  default, other = codec.compress(photo), codec.compress(photo, 1)
  assert default == codec.compress(photo, codec.default_quality) != other
  loaded = tf.saved_model.load(path)
  png = tf.constant([images.encode_png(photo)])
  assert set(loaded.signatures["serving_default"].structured_input_signature[1]) == {
      "image_bytes"}
  assert loaded.signatures["serving_default"](image_bytes=png)["bitstream_bytes"][0] == default
  assert loaded.compress(png)["bitstream_bytes"][0] == default
  assert loaded.compress(png, tf.constant([1]))["bitstream_bytes"][0] == other
  assert loaded.compress_image(photo[None])["bitstream_bytes"][0] == default
  assert loaded.compress_image(photo[None], tf.constant([1]))["bitstream_bytes"][0] == other


def test_evaluate_runs_on_exports(exports, tmp_path):
  """`evaluate` through the contract: a variable-rate and a progressive export
  give the library's (stock-coded) file sizes and decoded images."""
  files = [str(p) for p in PHOTO_PATHS[:2]]
  for name in ("channelwise-vr", "rnn"):
    report = evaluate.evaluate_learned(exports[1][name][0], [1, 2], files,
                                       str(tmp_path / f"{name}.json"), progress=False)
    codec = library(name)
    assert report["results"]["quality"] == [1, 2]
    for i, quality in enumerate((1, 2)):
      bpps, psnrs = [], []
      for path in files:
        image = images.read_image(path)[0]
        data = codec.compress(image, quality)
        bpps.append(metrics.bits_per_pixel(len(data), *image.shape[:2]))
        psnrs.append(metrics.psnr(image, codec.decompress(data)))
      assert report["results"]["bpp"][i] == pytest.approx(np.mean(bpps), abs=0), name
      assert report["results"]["psnr-rgb"][i] == pytest.approx(np.mean(psnrs)), name


@pytest.mark.slow
def test_evaluate_cli_on_an_export(exports, tmp_path, run_cli):
  data = tmp_path / "data"
  data.mkdir()
  (data / PHOTO_PATHS[0].name).write_bytes(PHOTO_PATHS[0].read_bytes())
  result = run_cli("evaluate", "--model", os.path.dirname(exports[1]["channelwise-vr"][0]),
                   "--data", str(data), "--output", str(tmp_path / "out.json"))
  assert result.returncode == 0, result.stderr
  report = json.loads((tmp_path / "out.json").read_text())
  assert report["results"]["quality"] == [1, 2, 3]


@pytest.mark.slow
def test_saved_model_cli_examples_of_the_docs(exports, tmp_path, photo):
  """docs/serving.md's `saved_model_cli run` lines, run as written on a
  variable-rate export: with and without quality, and from a literal image."""
  (tmp_path / "exports" / "default").mkdir(parents=True)
  os.symlink(exports[1]["channelwise-vr"][0], tmp_path / "exports" / "default" / "1")
  shutil.copy(PHOTO_PATHS[0], tmp_path / "photo.png")
  commands = doc_commands(("saved_model_cli run", "python -c"))
  assert len(commands) == 5, commands
  env = subprocess_env({"PATH": os.path.dirname(sys.executable) + os.pathsep
                        + os.environ["PATH"]})
  for command in commands:
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, (command, result.stderr[-2000:])
  codec = library("channelwise-vr")
  written = lambda outdir: np.load(tmp_path / outdir / "bitstream_bytes.npy",
                                   allow_pickle=True).tolist()
  assert written("default_quality") == [codec.compress(photo)]
  assert written("quality_1") == [codec.compress(photo, 1)]
  assert written("two_pixels") == [codec.compress(np.array([[[255, 0, 0], [0, 0, 255]]],
                                                           np.uint8))]
  assert (tmp_path / "photo.tfci").read_bytes() == codec.compress(photo, 1)


def test_exports_are_not_exported_again(exports):
  with pytest.raises(CodecError, match="an export already"):
    export.export(exports[1]["hyperprior"][0], str(exports[0]))


def test_layout_versions_and_models_config(exports):
  base, paths = exports
  for name, (path, _) in paths.items():
    assert path == str(base / os.path.basename(str(MODELS[name][0])) / "1")
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
  config = (base / "models.config").read_text()
  for path, _ in paths.values():
    assert f'base_path: "{os.path.dirname(path)}"' in config
  assert config.count("config {") == len(paths)
  with pytest.raises(CodecError, match="exists"):
    export.export(str(MODELS["hyperprior"][0]), str(base), version=1)


SAVED_MODEL_CLI_WITH_TFC_OPS = (
    "import sys, tensorflow_compression; "
    "from tensorflow.python.tools.saved_model_cli import main; "
    "sys.argv[0] = 'saved_model_cli'; main()")


def test_saved_model_cli_lists_the_signatures(exports):
  """Stock saved_model_cli stops at the range-coder ops of an --ops tfc export
  (custom ops, not registered); with tensorflow_compression imported it lists
  everything. A stock export needs nothing."""
  path, _ = exports[1]["hyperprior-vr"]
  stock = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  result = subprocess.run([stock, "show", "--dir", path, "--all"], capture_output=True,
                          text=True, env=subprocess_env())
  assert result.returncode != 0 and "Op type not registered" in result.stderr
  result = subprocess.run([stock, "show", "--dir", exports[1]["hyperprior"][0], "--all"],
                          capture_output=True, text=True, env=subprocess_env(), check=True)
  assert "signature_def['decompress']" in result.stdout
  out = subprocess.run([sys.executable, "-c", SAVED_MODEL_CLI_WITH_TFC_OPS, "show",
                        "--dir", path, "--all"], capture_output=True,
                       text=True, env=subprocess_env(), check=True).stdout
  blocks = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)(?=signature_def\[|\Z)",
                           out, re.S))
  assert {"serving_default", "compress", "compress_image", "decompress",
          "decompress_image"} <= set(blocks)
  assert "['quality']" not in blocks["serving_default"]
  expected = {
      "serving_default": [("image_bytes", "DT_STRING", "(-1)"),
                          ("bitstream_bytes", "DT_STRING", "(-1)")],
      "compress": [("image_bytes", "DT_STRING", "(-1)"), ("quality", "DT_INT32", "(-1)"),
                   ("bitstream_bytes", "DT_STRING", "(-1)")],
      "compress_image": [("image", "DT_UINT8", "(1, -1, -1, 3)"),
                         ("quality", "DT_INT32", "(1)"), ("bitstream_bytes", "DT_STRING", "(1)")],
      "decompress": [("bitstream_bytes", "DT_STRING", "(-1)"), ("png_bytes", "DT_STRING", "(-1)")],
      "decompress_image": [("bitstream_bytes", "DT_STRING", "(1)"),
                           ("image", "DT_UINT8", "(1, -1, -1, 3)")]}
  for signature, tensors in expected.items():
    for name, dtype, shape in tensors:
      assert re.search(rf"\['{name}'\] tensor_info:\s+dtype: {dtype}\s+shape: \({shape[1:-1]}\)",
                       blocks[signature].replace("(-1,)", "(-1)").replace("(1,)", "(1)")), (
                           signature, name, blocks[signature])


def test_examples_decode_in_tf_data_and_as_a_keras_layer(exports, photos, tmp_path, repo_root):
  path, _ = exports[1]["hyperprior"]
  codec = library("hyperprior")
  expected = {}
  for name, image in photos.items():
    data = codec.compress(image)
    (tmp_path / f"{name}.tfci").write_bytes(data)
    expected[f"{name}.tfci"] = codec.decompress(data)
  out = subprocess.run(
      [sys.executable, str(repo_root / "examples" / "decode_tfci_dataset.py"), path,
       str(tmp_path)], capture_output=True, text=True, env=subprocess_env(),
      check=True).stdout.splitlines()
  assert sorted(os.path.basename(l.split()[0]) for l in out) == sorted(expected)
  for line in out:
    assert line.split()[1] == "96x128" and len(line.split()) == 5
  name = sorted(expected)[0]
  out = subprocess.run(
      [sys.executable, str(repo_root / "examples" / "keras_decompress_layer.py"), path,
       str(tmp_path / name)], capture_output=True, text=True, env=subprocess_env(),
      check=True).stdout.split()
  assert out[0] == "96x128"
  means = expected[name].reshape(-1, 3).mean(axis=0) / 255.
  np.testing.assert_allclose([float(v) for v in out[1:]], means, atol=1e-4)
