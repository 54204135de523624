"""The `tfc_codecs` command line, run as a user would (subprocesses).

Each CLI run imports TensorFlow (several seconds on 2 cores), so one
module-scoped fixture starts every run up front, two at a time, and the tests
check the results: compress/decompress/info round trip, bad inputs, training.
"""

import concurrent.futures
import dataclasses
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfc_codecs import container, zoo
from tfc_codecs.evaluation import metrics

PHOTO = "bsds_crop_0.png"


def read_png(path):
  with Image.open(path) as image:
    assert image.mode == "RGB"
    return np.asarray(image)


def no_temp_files(folder):
  return [str(p) for p in folder.rglob(".tmp-*")]


# All CLI runs -------------------------------------------------------------------
@dataclasses.dataclass
class Case:
  """One CLI run on bad inputs: each input must give its own error line."""
  args: list
  errors: list  # Per failing input, in order: (file named, expected fragment).
  absent: list = dataclasses.field(default_factory=list)  # Must not be created.
  kept: dict = dataclasses.field(default_factory=dict)  # File -> unchanged bytes.


def flip_payload_bit(data):
  damaged = bytearray(data)
  damaged[-10] ^= 0x04  # Inside the last payload.
  return bytes(damaged)


def make_cases(folder, repo_root, model_dirs, codecs, photos):
  """One sub-folder per case with its inputs; returns name -> Case."""
  model = str(model_dirs["hyperprior"])
  png = (repo_root / "testdata" / "images" / PHOTO).read_bytes()
  tfci = codecs["hyperprior"].compress(photos[PHOTO])
  foreign = codecs["factorized"].compress(photos[PHOTO])
  huge = container.serialize(dataclasses.replace(
      codecs["hyperprior"].parse(tfci), height=60000, width=60000))
  bad_images = {"missing.png": None, "folder.png": "dir", "text.png": b"not an image\n",
                "empty.png": b"", "truncated.png": png[:len(png) // 2]}
  bad_files = {"truncated.tfci": tfci[:-20], "corrupted.tfci": flip_payload_bit(tfci),
               "foreign.tfci": foreign, "huge.tfci": huge, "image.tfci": png}
  files = {
      "compress_bad_inputs": bad_images,
      "compress_existing_output": {"in.png": png, "in.png.tfci": b"original"},
      "compress_overwrite": {"in.png": png, "in.png.tfci": b"original"},
      "decompress_bad_files": bad_files,
      "decompress_existing_output": {"in.tfci": tfci, "in.tfci.png": b"original"},
      "info_corrupted": {"in.tfci": flip_payload_bit(tfci)},
  }
  cases = {
      "compress_bad_inputs": Case(
          ["compress", "--model", model] + list(bad_images),
          [("missing.png", "no such file"), ("folder.png", "is a directory"),
           ("text.png", "not an image"), ("empty.png", "not an image"),
           ("truncated.png", "cannot decode")],
          absent=[name + ".tfci" for name in bad_images]),
      "compress_existing_output": Case(
          ["compress", "--model", model, "in.png"], [("in.png.tfci", "exists")],
          kept={"in.png.tfci": b"original"}),
      "compress_overwrite": Case(
          ["compress", "--model", model, "--overwrite", "in.png"], []),
      "decompress_bad_files": Case(
          ["decompress", "--model", model] + list(bad_files),
          # These messages do not name the file (see the CLI's `_each`).
          [("", "truncated"), ("", "checksum"), ("", "factorized"),
           ("", "60000x60000"), ("", "not a .tfci file")],
          absent=[name + ".png" for name in bad_files]),
      "decompress_existing_output": Case(
          ["decompress", "--model", model, "in.tfci"], [("in.tfci.png", "exists")],
          kept={"in.tfci.png": b"original"}),
      "info_corrupted": Case(["info", "in.tfci"], [("", "checksum")]),
  }
  for name, contents in files.items():
    (folder / name).mkdir()
    for file_name, data in contents.items():
      if data == "dir":
        (folder / name / file_name).mkdir()
      elif data is not None:
        (folder / name / file_name).write_bytes(data)
  return cases


TRAIN_ARGS = ["train", "--model_type", "factorized", "--num_filters", "8",
              "--latent_filters", "8", "--lambda", "0.01", "--train_glob",
              "testdata/images", "--patch_size", "32", "--batch_size", "2",
              "--log_every", "1"]


def read_meta(model):
  path = model / "model.json"
  return json.loads(path.read_text()) if path.exists() else None


def train_chain(run_cli, folder, photo_path):
  """train 3 steps, compress + decompress with the model, resume to 5 steps."""
  train_dir, work = folder / "run", folder / "work"
  model = train_dir / "model"
  work.mkdir()
  shutil.copy(photo_path, work / "photo.png")
  runs = dict(train_dir=train_dir, work=work)
  runs["first"] = run_cli(*TRAIN_ARGS, "--train_dir", train_dir, "--max_steps", "3")
  runs["meta3"] = read_meta(model)
  runs["compress"] = run_cli("compress", "--model", model, "photo.png", cwd=work)
  runs["decompress"] = run_cli("decompress", "--model", model, "photo.png.tfci", cwd=work)
  runs["second"] = run_cli(*TRAIN_ARGS, "--train_dir", train_dir, "--max_steps", "5")
  runs["meta5"] = read_meta(model)
  return runs


def roundtrip_chain(run_cli, folder, photo_path, model):
  """compress -V and decompress with default output names, then info."""
  shutil.copy(photo_path, folder / "photo.png")
  return dict(
      work=folder,
      compress=run_cli("compress", "--model", model, "-V", "photo.png", cwd=folder),
      decompress=run_cli("decompress", "--model", model, "photo.png.tfci", cwd=folder),
      info=run_cli("info", "photo.png.tfci", cwd=folder))


def variable_rate_chain(run_cli, folder, photo_path, model):
  """compress at two qualities of one variable-rate model, decompress, info."""
  shutil.copy(photo_path, folder / "photo.png")
  runs = dict(work=folder)
  for quality in (1, 3):
    runs[f"compress{quality}"] = run_cli(
        "compress", "--model", model, "--quality", str(quality), "photo.png",
        "--output", f"q{quality}.tfci", cwd=folder)
    runs[f"decompress{quality}"] = run_cli(
        "decompress", "--model", model, f"q{quality}.tfci", cwd=folder)
    runs[f"info{quality}"] = run_cli("info", f"q{quality}.tfci", cwd=folder)
  runs["target"] = run_cli("compress", "--model", model, "--target_bpp", "1.5", "-V",
                           "photo.png", "--output", "target.tfci", cwd=folder)
  runs["target_and_quality"] = run_cli(
      "compress", "--model", model, "--target_psnr", "20", "--quality", "2",
      "photo.png", "--output", "both.tfci", cwd=folder)
  runs["bad_quality"] = run_cli("compress", "--model", model, "--quality", "9",
                                "photo.png", "--output", "q9.tfci", cwd=folder)
  return runs


def batch_chain(run_cli, folder, photo_paths, model):
  """Every test photo compressed in one call, then decompressed in one call,
  two images in flight at a time."""
  names = [path.name for path in photo_paths]
  for path in photo_paths:
    shutil.copy(path, folder / path.name)
  (folder / "out").mkdir()
  return dict(
      work=folder, names=names,
      compress=run_cli("compress", "--model", model, "--workers", "2", *names,
                       "--output", "out", cwd=folder),
      decompress=run_cli("decompress", "--model", model, "--workers", "2", "-V",
                         *[f"out/{name}.tfci" for name in names], "--output", "out",
                         cwd=folder))


@pytest.fixture(scope="module")
def cli_runs(run_cli, repo_root, model_dirs, codecs, photos, tmp_path_factory):
  photo_path = repo_root / "testdata" / "images" / PHOTO
  error_dir = tmp_path_factory.mktemp("cli_errors")
  cases = make_cases(error_dir, repo_root, model_dirs, codecs, photos)
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    train = pool.submit(train_chain, run_cli, tmp_path_factory.mktemp("train"),
                        photo_path)
    roundtrip = pool.submit(roundtrip_chain, run_cli, tmp_path_factory.mktemp("cli"),
                            photo_path, str(model_dirs["hyperprior"]))
    variable_rate = pool.submit(
        variable_rate_chain, run_cli, tmp_path_factory.mktemp("vr"), photo_path,
        str(repo_root / "testdata" / "models" / "hyperprior_vr_tiny"))
    batch = pool.submit(batch_chain, run_cli, tmp_path_factory.mktemp("batch"),
                        sorted((repo_root / "testdata" / "images").glob("*.png")),
                        str(model_dirs["hyperprior"]))
    errors = {name: pool.submit(run_cli, *case.args, cwd=error_dir / name)
              for name, case in cases.items()}
    return dict(train=train.result(), roundtrip=roundtrip.result(),
                variable_rate=variable_rate.result(), batch=batch.result(),
                errors={name: (cases[name], error_dir / name, future.result())
                        for name, future in errors.items()})


# Compress, decompress, info, models ---------------------------------------------
@pytest.fixture(scope="module")
def roundtrip(cli_runs):
  return cli_runs["roundtrip"]


@pytest.mark.slow  # CLI subprocesses.
def test_compress_writes_input_name_plus_tfci(roundtrip, codecs):
  result = roundtrip["compress"]
  assert result.returncode == 0, result.stderr
  assert "error" not in result.stderr
  stream = codecs["hyperprior"].parse((roundtrip["work"] / "photo.png.tfci").read_bytes())
  assert (stream.height, stream.width) == (96, 128)
  assert no_temp_files(roundtrip["work"]) == []


@pytest.mark.slow  # CLI subprocesses.
def test_verbose_prints_bpp_psnr_ms_ssim(roundtrip):
  result = roundtrip["compress"]
  size = (roundtrip["work"] / "photo.png.tfci").stat().st_size
  match = re.fullmatch(
      r"photo\.png\.tfci: 96x128, (?:quality \d+, )?(\d+) bytes, ([\d.]+) bpp, PSNR ([\d.]+) dB, "
      r"MS-SSIM ([\d.]+) \(([\d.]+) dB\)", result.stdout.strip())
  assert match, result.stdout
  num_bytes, bpp, psnr, ms_ssim, ms_ssim_db = match.groups()
  assert int(num_bytes) == size
  assert bpp == f"{8 * size / (96 * 128):.4f}"
  # The printed quality is that of the file as the CLI decodes it.
  original = read_png(roundtrip["work"] / "photo.png")
  decoded = read_png(roundtrip["work"] / "photo.png.tfci.png")
  assert psnr == f"{metrics.psnr(original, decoded):.2f}"
  value = metrics.ms_ssim(original, decoded)
  assert ms_ssim == f"{value:.4f}" and ms_ssim_db == f"{metrics.ms_ssim_db(value):.2f}"


@pytest.mark.slow  # CLI subprocesses.
def test_decompress_writes_file_name_plus_png(roundtrip):
  result = roundtrip["decompress"]
  assert result.returncode == 0, result.stderr
  assert read_png(roundtrip["work"] / "photo.png.tfci.png").shape == (96, 128, 3)
  assert no_temp_files(roundtrip["work"]) == []


@pytest.mark.slow  # CLI subprocesses.
def test_cli_and_api_agree(roundtrip, codecs, photos):
  """The CLI writes the bytes the Python API writes, and decodes them to the
  image the API decodes: a .tfci file must not depend on the entry point."""
  codec = codecs["hyperprior"]
  data = (roundtrip["work"] / "photo.png.tfci").read_bytes()
  api_data = codec.compress(photos[PHOTO])
  assert (len(data), data) == (len(api_data), api_data)
  decoded = read_png(roundtrip["work"] / "photo.png.tfci.png")
  mismatch = np.count_nonzero(decoded != codec.decompress(data))
  assert mismatch == 0, f"{mismatch} samples differ between CLI and API decodes"


@pytest.mark.slow  # CLI subprocesses.
def test_batch_writes_what_one_by_one_compression_writes(cli_runs, codecs, photos):
  """A pipelined batch (several images in flight) writes each image's file
  and decoded PNG exactly as the API does for that image alone, and reports
  in input order."""
  runs, codec = cli_runs["batch"], codecs["hyperprior"]
  for step in ("compress", "decompress"):
    assert runs[step].returncode == 0 and runs[step].stderr == "", runs[step].stderr
  for name in runs["names"]:
    data = (runs["work"] / "out" / f"{name}.tfci").read_bytes()
    assert data == codec.compress(photos[name]), name
    np.testing.assert_array_equal(read_png(runs["work"] / "out" / f"{name}.tfci.png"),
                                  codec.decompress(data))
  lines = runs["decompress"].stdout.splitlines()
  assert lines[:-1] == [f"out/{name}.tfci.png: 96x128" for name in runs["names"]]
  count = len(runs["names"])
  assert re.fullmatch(rf"{count} of {count} images in [\d.]+ s \([\d.]+ images/s\)",
                      lines[-1]), lines[-1]


@pytest.mark.slow  # CLI subprocesses.
def test_info(roundtrip, codecs):
  result = roundtrip["info"]
  assert result.returncode == 0, result.stderr
  data = (roundtrip["work"] / "photo.png.tfci").read_bytes()
  stream = container.parse(data, 1 << 20)
  out = result.stdout
  assert re.search(r"^codec:\s+hyperprior$", out, re.M), out
  assert re.search(rf"^model:\s+{codecs['hyperprior'].fingerprint.hex()} "
                   r"\(not a shipped model\)$", out, re.M), out
  assert re.search(r"^image size:\s+96x128$", out, re.M), out
  sizes = ", ".join(str(len(p)) for p in stream.payloads)
  assert re.search(rf"^sizes:\s+{sizes} bytes$", out, re.M), out
  assert re.search(rf"^total:\s+{len(data)} bytes ", out, re.M), out


@pytest.mark.slow  # CLI subprocesses.
def test_max_pixels_flag(run_cli, repo_root, model_dirs, tmp_path):
  """--max_pixels below a 96x128 image refuses it (compress) and its file
  (decompress, info) with one error line; at its size it is admitted."""
  shutil.copy(repo_root / "testdata" / "images" / PHOTO, tmp_path / "photo.png")
  model = str(model_dirs["factorized"])
  limit = 96 * 128
  runs = {
      "compress": run_cli("compress", "--model", model, "--max_pixels", limit - 1,
                          "photo.png", cwd=tmp_path),
      "admitted": run_cli("compress", "--model", model, "--max_pixels", limit,
                          "photo.png", cwd=tmp_path)}
  assert runs["admitted"].returncode == 0, runs["admitted"].stderr
  runs["decompress"] = run_cli("decompress", "--model", model, "--max_pixels", limit - 1,
                               "photo.png.tfci", cwd=tmp_path)
  runs["info"] = run_cli("info", "--max_pixels", limit - 1, "photo.png.tfci", cwd=tmp_path)
  for name in ("compress", "decompress", "info"):
    result = runs[name]
    assert result.returncode == 1, (name, result.stderr)
    assert len(result.stderr.splitlines()) == 1, (name, result.stderr)
    assert f"limit of {limit - 1} pixels" in result.stderr, (name, result.stderr)
  assert not (tmp_path / "photo.png.tfci.png").exists()


@pytest.mark.slow  # CLI subprocesses.
def test_variable_rate_model_from_the_cli(cli_runs, repo_root, photos):
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  runs = cli_runs["variable_rate"]
  codec = tfc_codecs.load(str(repo_root / "testdata" / "models" / "hyperprior_vr_tiny"))
  sizes = []
  for quality in (1, 3):
    for step in ("compress", "decompress", "info"):
      assert runs[f"{step}{quality}"].returncode == 0, runs[f"{step}{quality}"].stderr
    data = (runs["work"] / f"q{quality}.tfci").read_bytes()
    assert data == codec.compress(photos[PHOTO], quality)
    np.testing.assert_array_equal(read_png(runs["work"] / f"q{quality}.tfci.png"),
                                  codec.decompress(data))
    assert re.search(rf"^quality:\s+{quality}$", runs[f"info{quality}"].stdout, re.M)
    sizes.append(len(data))
  assert sizes[0] < sizes[1]
  from tfc_codecs import rate_control  # pylint: disable=import-outside-toplevel
  choice = rate_control.compress_to_target(codec.source, photos[PHOTO], target_bpp=1.5)
  assert runs["target"].returncode == 0, runs["target"].stderr
  assert (runs["work"] / "target.tfci").read_bytes() == choice.data
  assert f"quality {choice.quality}, " in runs["target"].stdout
  both = runs["target_and_quality"]
  assert both.returncode != 0 and "--quality cannot be combined" in both.stderr
  assert not (runs["work"] / "both.tfci").exists()
  bad = runs["bad_quality"]
  assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
  assert "quality" in bad.stderr and not (runs["work"] / "q9.tfci").exists()


@pytest.mark.slow  # CLI subprocesses.
def test_models(run_cli):
  result = run_cli("models")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].split()[:3] == ["model", "quality", "codec"]
  for entry in zoo.shipped_models():
    rows = [l for l in lines[1:] if entry["meta"]["fingerprint"] in l
            and l.split()[1] == str(entry["quality"])]
    assert len(rows) == 1, (entry["name"], entry["quality"], result.stdout)
    assert rows[0].split()[0] == entry["name"]
    assert rows[0].split()[2] == entry["meta"]["codec"]
  default = [l for l in lines if l.endswith("(default)")]
  assert len(default) == 1 and default[0].split()[0] == zoo.DEFAULT_MODEL


# Bad inputs -------------------------------------------------------------------
ERROR_CASES = ["compress_bad_inputs", "compress_existing_output", "decompress_bad_files",
               "decompress_existing_output", "info_corrupted"]


@pytest.mark.slow  # CLI subprocesses.
@pytest.mark.parametrize("name", ERROR_CASES)
def test_bad_inputs_give_one_error_line_each(cli_runs, name):
  case, folder, result = cli_runs["errors"][name]
  lines = [l for l in result.stderr.splitlines() if l.strip()]
  assert result.returncode == 1, result.stderr
  assert "Traceback" not in result.stderr and "internal error" not in result.stderr
  assert len(lines) == len(case.errors), result.stderr
  for line, (path, fragment) in zip(lines, case.errors):
    assert line.startswith("tfc_codecs: error: "), result.stderr
    assert path in line and fragment in line, result.stderr
  assert result.stdout == ""
  for path in case.absent:
    assert not (folder / path).exists(), path
  for path, data in case.kept.items():
    assert (folder / path).read_bytes() == data, path
  assert no_temp_files(folder) == []


@pytest.mark.slow  # CLI subprocesses.
def test_overwrite_replaces_output(cli_runs, codecs):
  _, folder, result = cli_runs["errors"]["compress_overwrite"]
  assert result.returncode == 0, result.stderr
  data = (folder / "in.png.tfci").read_bytes()
  assert data != b"original"
  assert codecs["hyperprior"].parse(data).height == 96
  assert no_temp_files(folder) == []


# Training ---------------------------------------------------------------------
@pytest.mark.slow  # CLI subprocesses.
def test_train_writes_a_model(cli_runs):
  runs = cli_runs["train"]
  assert runs["first"].returncode == 0, runs["first"].stderr
  stdout = runs["first"].stdout
  assert re.search(r"^step 3 ", stdout, re.M) and "resumed from" not in stdout, stdout
  meta = runs["meta3"]
  assert meta["codec"] == "factorized"
  assert meta["config"] == {"num_filters": 8, "latent_filters": 8}
  assert meta["provenance"]["steps"] == 3
  assert f"fingerprint {meta['fingerprint']}" in stdout


@pytest.mark.slow  # CLI subprocesses.
def test_trained_model_compresses_and_decompresses(cli_runs):
  runs = cli_runs["train"]
  assert runs["compress"].returncode == 0, runs["compress"].stderr
  stream = container.parse((runs["work"] / "photo.png.tfci").read_bytes(), 1 << 20)
  assert stream.codec == "factorized"
  assert stream.fingerprint.hex() == runs["meta3"]["fingerprint"]
  assert runs["decompress"].returncode == 0, runs["decompress"].stderr
  assert read_png(runs["work"] / "photo.png.tfci.png").shape == (96, 128, 3)


@pytest.mark.slow  # CLI subprocesses.
def test_train_resumes(cli_runs):
  runs = cli_runs["train"]
  second = runs["second"]
  assert second.returncode == 0, second.stderr
  assert re.search(r"resumed from .* at step 3", second.stdout), second.stdout
  assert re.search(r"^step 4 ", second.stdout, re.M), second.stdout
  assert not re.search(r"^step [123] ", second.stdout, re.M), second.stdout
  assert runs["meta5"]["provenance"]["steps"] == 5
  assert runs["meta5"]["fingerprint"] != runs["meta3"]["fingerprint"]
  assert no_temp_files(runs["train_dir"]) == []


@pytest.mark.slow  # CLI subprocesses.
def test_stock_coder_from_the_cli(run_cli, model_dirs, photos, tmp_path):
  """compress --ops stock writes what the library's stock coder writes
  (coder 5); decompress and info read it like a range-coded file."""
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  model = str(model_dirs["hyperprior"])
  shutil.copy(model_dirs["hyperprior"].parent.parent / "images" / PHOTO, tmp_path / "p.png")
  result = run_cli("compress", "--model", model, "--ops", "stock", "p.png", cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  data = (tmp_path / "p.png.tfci").read_bytes()
  assert data == tfc_codecs.load(model, ops="stock").compress(photos[PHOTO])
  assert container.parse(data, 1 << 20).coder == container.CODER_STOCK
  result = run_cli("decompress", "--model", model, "p.png.tfci", cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  np.testing.assert_array_equal(read_png(tmp_path / "p.png.tfci.png"),
                                tfc_codecs.load(model).decompress(data))
  result = run_cli("info", "p.png.tfci", cwd=tmp_path)
  assert re.search(r"^coder:\s+stock-rans\+escapes$", result.stdout, re.M), result.stdout


@pytest.mark.slow  # A subprocess.
def test_only_the_train_command_imports_tensorflow_to_parse_its_flags(repo_root, shell_env):
  """train's flags come from the codecs' declarations; every other command
  (and --help) parses without TensorFlow."""
  code = ("import sys; from tfc_codecs import cli\n"
          "cli.parse_args(['tfc_codecs', 'info', 'x.tfci'])\n"
          "print('tensorflow' in sys.modules)\n"
          "args = cli.parse_args(['tfc_codecs', 'train', '--model_type', 'rnn',"
          " '--train_dir', 'run', '--cell', 'gru', '--slices', '4,8'])\n"
          "print('tensorflow' in sys.modules, args.cell, args.slices)")
  result = subprocess.run([sys.executable, "-c", code], cwd=repo_root, env=shell_env(),
                          capture_output=True, text=True, check=False)
  assert result.stdout.split() == ["False", "True", "gru", "[4,", "8]"], result.stderr
