"""Metrics, BD-rate, results schema, evaluate (incl. resume), bdrate/plot CLI."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfc_codecs.errors import CodecError
from tfc_codecs.evaluation import bdrate, classical, evaluate, metrics, results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_RNN = os.path.join(ROOT, "testdata", "models", "rnn_tiny")
TINY_HYPERPRIOR = os.path.join(ROOT, "testdata", "models", "hyperprior_tiny")


def test_psnr_hand_computed():
  a = np.zeros((2, 2, 3), np.uint8)
  b = a.copy()
  b[0, 0, 0] = 255  # MSE = 255² / 12  ->  PSNR = 10·log10(12).
  assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(12))
  assert metrics.psnr(a, a) == math.inf


def test_ms_ssim_matches_tensorflow_and_identity():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
  reference = tf.image.ssim_multiscale(a.astype(np.float32), b.astype(np.float32), 255.)
  assert metrics.ms_ssim(a, b) == pytest.approx(float(reference), abs=1e-4)
  assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
  assert metrics.ms_ssim(a[:8, :8], b[:8, :8]) is None
  assert 0 < metrics.ms_ssim(a[:40, :40], b[:40, :40]) < 1
  assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)


def test_bd_rate_hand_checked():
  rate = [0.25, 0.5, 1.0, 2.0]
  psnr = [28., 31., 34., 37.]  # 3 dB per doubling of the rate.
  test_rate = [r * 0.8 for r in rate]
  assert bdrate.bd_rate(rate, psnr, test_rate, psnr) == pytest.approx(-20.0, abs=1e-6)
  # At equal rate the test curve is 3·log2(1/0.8) dB better.
  assert bdrate.bd_quality(rate, psnr, test_rate, psnr) == pytest.approx(
      3 * math.log2(1.25), abs=1e-6)
  assert bdrate.bd_rate(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_is_exact_for_a_rate_factor_on_any_curve():
  """A curve that needs a fixed fraction fewer bits at every quality has that
  BD-rate exactly, however irregular the curve and in whatever order its
  points come (PCHIP passes through every point; a cubic fit would not)."""
  rng = np.random.default_rng(3)
  psnr = np.sort(rng.uniform(24., 40., 9))
  rate = np.exp(np.cumsum(rng.uniform(0.05, 0.9, 9)))  # Irregular, increasing.
  order = rng.permutation(9)
  for factor in (0.5, 0.8, 1.3):
    assert bdrate.bd_rate(rate, psnr, (rate * factor)[order], psnr[order]) == pytest.approx(
        (factor - 1) * 100, abs=1e-9)
  assert bdrate.overlap(psnr, np.append(psnr, 60.)) == (psnr[0], psnr[-1])


def test_ms_ssim_bd_scale_is_decibels_of_the_distance_to_one():
  np.testing.assert_allclose(bdrate.bd_scale("ms-ssim-rgb", [0.9, 0.99, 0.999]), [10., 20., 30.])
  np.testing.assert_array_equal(bdrate.bd_scale("psnr-rgb", [30., 31.]), [30., 31.])


def test_bd_rate_rejects_disjoint_and_short_curves():
  with pytest.raises(CodecError):
    bdrate.bd_rate([1, 2], [30, 31], [1, 2], [40, 41])
  with pytest.raises(CodecError):
    bdrate.bd_rate([1], [30], [1, 2], [30, 31])


def test_results_load_tfc_table(tmp_path):
  for folder, values in (("PSNR_sRGB_RGB", (30, 33)), ("MS-SSIM_sRGB_RGB", (0.95, 0.97))):
    os.makedirs(tmp_path / folder)
    (tmp_path / folder / "codec.txt").write_text(
        f"# comment\n0.5, {values[0]}\n1.0, {values[1]}\n")
  report = results.load(str(tmp_path / "PSNR_sRGB_RGB" / "codec.txt"))
  assert report["results"] == {"bpp": [0.5, 1.0], "psnr-rgb": [30., 33.],
                               "ms-ssim-rgb": [0.95, 0.97]}
  (tmp_path / "bad.json").write_text("{}")
  with pytest.raises(CodecError):
    results.load(str(tmp_path / "bad.json"))


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
  folder = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(1)
  for i in range(2):
    smooth = np.kron(rng.integers(0, 256, (8, 10, 3)), np.ones((8, 8, 1)))
    Image.fromarray(smooth.astype(np.uint8)).save(folder / f"img{i}.png")
  return str(folder)


def test_evaluate_schema_and_real_file_sizes(two_images, tmp_path):
  files = evaluate.list_images(two_images)
  output = str(tmp_path / "jpeg.json")
  report = evaluate.evaluate(*evaluate.classical_points("jpeg-420", [50, 90]),
                             files, output, per_image=True, progress=False)
  with open(output) as f:
    assert json.load(f) == report
  assert not os.path.exists(output + ".partial.jsonl")
  assert set(report) >= {"name", "description", "results", "per_image"}
  for metric in evaluate.METRICS:
    assert len(report["results"][metric]) == 2
  assert report["results"]["quality"] == [50, 90]
  image = np.asarray(Image.open(files[0]))
  size = len(classical.encoder("jpeg-420", 50)(image))
  assert report["per_image"][0]["bpp"] == pytest.approx(8 * size / (64 * 80))
  assert report["results"]["bpp"][0] < report["results"]["bpp"][1]
  assert report["results"]["psnr-rgb"][0] < report["results"]["psnr-rgb"][1]


@pytest.mark.parametrize("model", ["jpeg-420", "hyperprior", "rnn"])
def test_evaluate_refuses_images_over_max_pixels(two_images, tmp_path, model):
  """64x80 images: refused with a limit of 64 * 80 - 1 pixels, by every kind
  of evaluation (classical, learned, progressive)."""
  files = evaluate.list_images(two_images)
  output = str(tmp_path / "refused.json")
  with pytest.raises(CodecError, match=f"limit of {64 * 80 - 1} pixels"):
    if model == "jpeg-420":
      evaluate.evaluate(*evaluate.classical_points(model, [50]), files, output,
                        progress=False, max_pixels=64 * 80 - 1)
    else:
      evaluate.evaluate_learned(TINY_HYPERPRIOR if model == "hyperprior" else TINY_RNN, None,
                                files, output, progress=False, max_pixels=64 * 80 - 1)


def test_evaluate_resumes_without_recomputing(two_images, tmp_path):
  files = evaluate.list_images(two_images)
  output = str(tmp_path / "model.json")
  name, description, points = evaluate.learned_points(TINY_HYPERPRIOR, None)
  first = evaluate.evaluate(name, description, points, files, output, progress=False)
  # Pretend the run was interrupted after finishing: restore its partial log.
  rows = [dict(point=points[0].key, image=os.path.basename(f), quality=0,
               **{m: 1.0 for m in evaluate.METRICS}) for f in files]
  with open(output + ".partial.jsonl", "w") as f:
    f.write("".join(json.dumps(r) + "\n" for r in rows) + '{"cut short')

  def fail():
    raise AssertionError("finished points must not be recomputed")

  points[0].make_coder = fail
  resumed = evaluate.evaluate(name, description, points, files, output, progress=False)
  assert resumed["results"]["bpp"] == [1.0]
  assert 0 < first["results"]["bpp"][0] < 24


def test_progressive_evaluation_equals_one_file_per_quality(two_images, tmp_path):
  """rnn: one encode cut K ways gives the sizes and images of K-iteration files."""
  files = evaluate.list_images(two_images)
  fast = evaluate.evaluate_learned(TINY_RNN, [1, 3], files, str(tmp_path / "fast.json"),
                                   per_image=True, progress=False)
  slow = evaluate.evaluate(*evaluate.learned_points(TINY_RNN, [1, 3]), files,
                           str(tmp_path / "slow.json"), per_image=True, progress=False)
  assert fast["results"]["quality"] == slow["results"]["quality"] == [1, 3]
  for a, b in zip(fast["per_image"], slow["per_image"]):
    assert (a["point"], a["image"]) == (b["point"], b["image"])
    for metric in ("bpp", "psnr-rgb", "ms-ssim-rgb"):
      assert a[metric] == b[metric], (a, b)
  assert fast["results"]["bpp"][0] < fast["results"]["bpp"][1]


@pytest.mark.slow  # CLI subprocesses.
def test_bdrate_and_plot_cli(tmp_path):
  rate, psnr = [0.25, 0.5, 1.0, 2.0], [28., 31., 34., 37.]
  for name, scale in (("ref", 1.0), ("test", 0.8)):
    (tmp_path / f"{name}.json").write_text(json.dumps(dict(
        name=name, results={"bpp": [r * scale for r in rate], "psnr-rgb": psnr,
                            "ms-ssim-rgb": [0.9, 0.95, 0.97, 0.98]})))
  cli = [sys.executable, os.path.join(ROOT, "bin", "tfc_codecs")]
  out = subprocess.run(cli + ["bdrate", str(tmp_path / "ref.json"), str(tmp_path / "test.json")],
                       capture_output=True, text=True, check=True)
  assert "BD-rate -20.00%" in out.stdout
  png = tmp_path / "rd.png"
  subprocess.run(cli + ["plot", str(tmp_path / "ref.json"), str(tmp_path / "test.json"),
                        "--output", str(png)], capture_output=True, text=True, check=True)
  assert Image.open(png).size[0] > 500
  again = subprocess.run(cli + ["plot", str(tmp_path / "ref.json"), "--output", str(png)],
                         capture_output=True, text=True)
  assert again.returncode == 1
  assert again.stderr.strip().splitlines()[-1].startswith("tfc_codecs: error:")
