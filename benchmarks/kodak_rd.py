"""Kodak rate–distortion of every shipped model and of Pillow's codecs.

    python benchmarks/kodak_rd.py [--data ../shared/data/kodak] [--rerun NAME ...]

Writes benchmarks/results/kodak/<name>.json (CompressAI schema, via
`tfc_codecs evaluate`'s code), rd.png with the published anchors, and
summary.md: BD-rates against JPEG and WebP, and, for models with a single rate
point, the PSNR/MS-SSIM of JPEG and WebP interpolated at the model's bpp.
Existing result files are reused unless named in --rerun.
"""

import argparse
import os

import numpy as np

from common import KODAK, ROOT, SHARED

from tfc_codecs import fileio, model_dir, zoo  # pylint: disable=wrong-import-position
from tfc_codecs.errors import CodecError  # pylint: disable=wrong-import-position
from tfc_codecs.evaluation import (bdrate, classical, evaluate, plots,  # pylint: disable=wrong-import-position
                                   results)

OUT = os.path.join(ROOT, "benchmarks", "results", "kodak")
ANCHORS = ["anchors/compressai-kodak/jpeg.json", "anchors/compressai-kodak/webp.json",
           "anchors/compressai-kodak/bpg_444_x265_ycbcr.json",
           "anchors/compressai-kodak/paper-bmshj2018-factorized.json",
           "anchors/compressai-kodak/paper-bmshj2018-hyperprior.json",
           "anchors/tfc-results/kodak/PSNR_sRGB_RGB/toderici-2017-cvpr.txt"]


def run(name, evaluate_into, rerun):
  """The results of `name`: reused, or made by evaluate_into(output file)."""
  output = os.path.join(OUT, f"{name}.json")
  if os.path.exists(output) and name not in rerun:
    return results.load(output)
  return evaluate_into(output)


def compare(test, reference, metric):
  """BD-rate (%) if both curves have 2+ points, else reference's metric at test's bpp."""
  t, r = test["results"], reference["results"]
  if len(t["bpp"]) >= 2:
    try:
      return f"{bdrate.bd_rate(r['bpp'], r[metric], t['bpp'], t[metric]):+.1f}%"
    except CodecError as e:
      return str(e)
  order = np.argsort(r["bpp"])
  at = float(np.interp(t["bpp"][0], np.array(r["bpp"])[order], np.array(r[metric])[order]))
  return f"{t[metric][0]:.3f} vs {at:.3f}"


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", default=KODAK)
  parser.add_argument("--rerun", nargs="*", default=[])
  parser.add_argument("--classical", nargs="*", default=list(classical.available()))
  args = parser.parse_args()
  os.makedirs(OUT, exist_ok=True)
  files = evaluate.list_images(args.data)
  reports = {}
  for name in args.classical:
    points = evaluate.classical_points(name, None)
    reports[name] = run(points[0], lambda output, points=points: evaluate.evaluate(
        *points, files, output, per_image=True), args.rerun)
  ours = []
  for family in zoo.family_names():
    report = run(evaluate.learned_name(family), lambda output, family=family:
                 evaluate.evaluate_learned(family, None, files, output, per_image=True),
                 args.rerun)
    ours.append(report)
    measured = {quality: {m: round(report["results"][m][i], 4)
                          for m in ("bpp", "psnr-rgb", "ms-ssim-rgb")}
                for i, quality in enumerate(report["results"]["quality"])}
    source = f"benchmarks/results/kodak/{report['name']}.json"
    for entry in zoo.shipped_models():  # `tfc_codecs models` shows these.
      if entry["name"] != family or entry["quality"] not in measured:
        continue
      if entry["meta"]["num_qualities"]:
        model_dir.record(entry["path"], "kodak", dict(
            {str(q): v for q, v in measured.items()}, source=source))
      else:
        model_dir.record(entry["path"], "kodak", dict(measured[entry["quality"]],
                                                      source=source))
  anchors = [results.load(os.path.join(SHARED, a)) for a in ANCHORS]
  fileio.atomic_write(os.path.join(OUT, "rd.png"), plots.plot_rd(
      ours + [reports[n] for n in ("jpeg-420", "webp") if n in reports],
      "Kodak (24 images)", anchors), overwrite=True)
  lines = ["| model | points | vs Pillow JPEG 4:2:0 (PSNR) | vs Pillow WebP (PSNR) | "
           "vs Pillow JPEG 4:2:0 (MS-SSIM) | vs Pillow WebP (MS-SSIM) |",
           "|---|---|---|---|---|---|"]
  for report in ours:
    row = [report["name"], str(len(report["results"]["bpp"]))]
    for metric in ("psnr-rgb", "ms-ssim-rgb"):
      for reference in ("jpeg-420", "webp"):
        row.append(compare(report, reports[reference], metric))
    lines.append("| " + " | ".join(row) + " |")
  lines += ["", "BD-rate where the model has 2+ rate points; otherwise the model's "
            "value vs the classical codec's, interpolated at the model's bpp.", "",
            "| codec | quality | bpp | PSNR-RGB dB | MS-SSIM | encode s | decode s |",
            "|---|---|---|---|---|---|---|"]
  for report in ours + list(reports.values()):
    r = report["results"]
    for i, quality in enumerate(r["quality"]):
      lines.append(f"| {report['name']} | {quality} | {r['bpp'][i]:.4f} | "
                   f"{r['psnr-rgb'][i]:.2f} | {r['ms-ssim-rgb'][i]:.4f} | "
                   f"{r['encoding_time'][i]:.3f} | {r['decoding_time'][i]:.3f} |")
  summary = "\n".join(lines) + "\n"
  fileio.atomic_write(os.path.join(OUT, "summary.md"), summary.encode(), overwrite=True)
  print(summary)


if __name__ == "__main__":
  main()
