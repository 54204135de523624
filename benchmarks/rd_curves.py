"""Rate–distortion curves of every shipped model and of Pillow's codecs, on
Kodak (the reporting set) or on the validation set (for choosing models).

    python benchmarks/rd_curves.py [--dataset {kodak,validation}] [--rerun NAME ...]
        [--skip NAME ...] [--model PATH --name NAME ...] [--baseline NAME]

Writes benchmarks/results/<dataset>/<name>.json (CompressAI schema, via
`tfc_codecs evaluate`'s code), rd.png (with the published anchors on Kodak
only: they are Kodak results) and summary.md: for every learned curve, its
BD-rates (PSNR-RGB, with the PSNR range the fits are integrated over, and
MS-SSIM; negative = fewer bits) against Pillow AVIF, WebP and JPEG 4:2:0
measured here on the same images and against the shipped hyperprior curve
(--baseline); for a curve with a single rate point, its PSNR/MS-SSIM vs the
reference's interpolated at its bpp; then every rate point.

--skip leaves out shipped families (or classical codecs) by name, e.g.
`--skip rnn` on the validation set, where it is slow. `--model PATH --name
NAME` (repeatable) adds an unshipped model directory, e.g. a training run's
/work/runs/X/model, as <NAME>.json next to the shipped ones. Existing result
files are reused unless named in --rerun, or made from other model weights
(fingerprints), images or qualities. Only --dataset kodak records the measured
points into the shipped models' model.json.
"""

import argparse
import json
import os
import re
import shlex
import sys

import numpy as np

from common import KODAK, ROOT, SHARED, VALIDATION

from tfc_codecs import fileio, model_dir, zoo  # pylint: disable=wrong-import-position
from tfc_codecs.errors import CodecError  # pylint: disable=wrong-import-position
from tfc_codecs.evaluation import (bdrate, classical, evaluate, plots,  # pylint: disable=wrong-import-position
                                   results)

DATASETS = {"kodak": (KODAK, "Kodak"), "validation": (VALIDATION, "Validation")}
# Published Kodak results, drawn on Kodak's plot only.
KODAK_ANCHORS = ["anchors/compressai-kodak/jpeg.json", "anchors/compressai-kodak/webp.json",
                 "anchors/compressai-kodak/bpg_444_x265_ycbcr.json",
                 "anchors/compressai-kodak/paper-bmshj2018-factorized.json",
                 "anchors/compressai-kodak/paper-bmshj2018-hyperprior.json",
                 "anchors/tfc-results/kodak/PSNR_sRGB_RGB/toderici-2017-cvpr.txt"]
# Classical references of the BD-rate tables and the plot, measured here.
CLASSICAL_REFERENCES = [("avif", "Pillow AVIF"), ("webp", "Pillow WebP"),
                        ("jpeg-420", "Pillow JPEG 4:2:0")]


def stale(report, images, points, expected):
  """Why a stored report is not of these images and points ('' if it is).

  `points` maps a stored point key to what identifies it (e.g. a model
  fingerprint), to be compared with `expected`. A report without per-image
  rows cannot be checked and is taken as it is."""
  rows = report.get("per_image")
  if not rows:
    return ""
  if {r["image"] for r in rows} != images:
    return "made on other images"
  found = {points(r["point"]) for r in rows}
  if found != expected:
    return f"made for {', '.join(sorted(found))}, not {', '.join(sorted(expected))}"
  return ""


def run(output, name, evaluate_into, rerun, why_stale):
  """The results in `output`: reused if fresh, else made by evaluate_into(output)."""
  if os.path.exists(output) and name not in rerun:
    report = results.load(output)
    reason = why_stale(report)
    if not reason:
      return report
    print(f"{os.path.relpath(output, ROOT)}: {reason}; evaluating again", flush=True)
  return evaluate_into(output)


def fingerprints(model):
  """Fingerprints of a shipped family's models, or of a model directory."""
  if model in zoo.family_names():
    return {e["meta"]["fingerprint"] for e in zoo.shipped_models() if e["name"] == model}
  return {zoo.read_fingerprint(zoo.resolve(model))}


def fingerprint_of(point):
  """The model fingerprint in a learned point key ('<fp>' or '<fp>-q<K>')."""
  return re.sub(r"-q\d+$", "", point)


def evaluate_model(model, name, files, output):
  """evaluate_learned on a shipped family or model dir, the report named `name`."""
  report = evaluate.evaluate_learned(model, None, files, output, per_image=True)
  if report["name"] != name:
    report["name"] = name
    fileio.atomic_write(output, (json.dumps(report, indent=2) + "\n").encode(),
                        overwrite=True)
  return report


def compare(test, reference, metric):
  """BD-rate (%) if both curves have 2+ points (for PSNR with the dB range it
  integrates over), else test's metric vs reference's at test's bpp."""
  if reference is None:
    return "n/a"
  if reference is test:
    return "(baseline)"
  t, r = test["results"], reference["results"]
  if len(t["bpp"]) >= 2:
    ref_quality, test_quality = bdrate.bd_scale(metric, r[metric]), bdrate.bd_scale(metric, t[metric])
    try:
      value = bdrate.bd_rate(r["bpp"], ref_quality, t["bpp"], test_quality)
    except CodecError as e:
      return str(e)
    low, high = bdrate.overlap(ref_quality, test_quality)
    return f"{value:+.2f}% ({low:.2f}–{high:.2f} dB)"
  order = np.argsort(r["bpp"])
  at = float(np.interp(t["bpp"][0], np.array(r["bpp"])[order], np.array(r[metric])[order]))
  digits = 2 if metric == "psnr-rgb" else 4
  return f"{t[metric][0]:.{digits}f} vs {at:.{digits}f}"


def record_kodak(family, report, source):
  """Records a shipped family's Kodak points into its models' model.json."""
  measured = {quality: {m: round(report["results"][m][i], 4)
                        for m in ("bpp", "psnr-rgb", "ms-ssim-rgb")}
              for i, quality in enumerate(report["results"]["quality"])}
  for entry in zoo.shipped_models():  # `tfc_codecs models` shows these.
    if entry["name"] != family or entry["quality"] not in measured:
      continue
    if entry["meta"]["num_qualities"]:
      model_dir.record(entry["path"], "kodak", dict(
          {str(q): v for q, v in measured.items()}, source=source))
    else:
      model_dir.record(entry["path"], "kodak", dict(measured[entry["quality"]],
                                                    source=source))


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", choices=sorted(DATASETS), default="kodak",
                      help="images ../shared/data/<dataset>, results "
                      "benchmarks/results/<dataset>/ (default kodak)")
  parser.add_argument("--rerun", nargs="*", default=[],
                      help="result names to evaluate again, e.g. tfc_codecs-rnn")
  parser.add_argument("--skip", nargs="*", default=[],
                      help="shipped families or classical codecs to leave out, e.g. rnn")
  parser.add_argument("--classical", nargs="*", default=list(classical.available()))
  parser.add_argument("--model", action="append", default=[], metavar="PATH",
                      help="an unshipped model directory to evaluate too (with --name)")
  parser.add_argument("--name", action="append", default=[],
                      help="the results name of the --model at the same position")
  parser.add_argument("--baseline", default="hyperprior",
                      help="the learned curve (family or --name) of the last BD-rate "
                      "column (default hyperprior)")
  parser.add_argument("--note", default="", help="a line for summary.md, e.g. "
                      "what else ran on the machine")
  args = parser.parse_args(argv)
  if len(args.model) != len(args.name):
    parser.error("give each --model PATH a --name NAME")
  for path, name in zip(args.model, args.name):
    if not re.fullmatch(r"[\w.+-]+", name):
      parser.error(f"--name {name!r}: letters, digits and . _ + - only")
    try:
      zoo.resolve(path)
    except CodecError as e:
      parser.error(f"--model {path}: {e}")
  return args


def main(argv=None):
  args = parse_args(argv)
  data, label = DATASETS[args.dataset]
  out = os.path.join(ROOT, "benchmarks", "results", args.dataset)
  os.makedirs(out, exist_ok=True)
  files = evaluate.list_images(data)
  images = {os.path.basename(f) for f in files}
  skip = set(args.skip)

  # Learned curves: key (family or --name) -> (model, results name).
  learned = {}
  for family in zoo.family_names():
    if family in skip or evaluate.learned_name(family) in skip:
      continue
    learned[family] = (family, evaluate.learned_name(family))
  for path, name in zip(args.model, args.name):
    if name in learned or name in {n for _, n in learned.values()}:
      raise CodecError(f"--name {name} is already a curve's name")
    learned[name] = (path, name)
  classical_names = [n for n in args.classical
                     if n not in skip and f"pillow-{n}" not in skip]
  taken = {n for _, n in learned.values()} & {f"pillow-{n}" for n in classical_names}
  if taken:
    raise CodecError(f"--name {', '.join(sorted(taken))} is a classical codec's name")
  known = ({n for f in zoo.family_names() for n in (f, evaluate.learned_name(f))}
           | {n for c in classical.QUALITIES for n in (c, f"pillow-{c}")})
  for name in sorted(skip - known):
    print(f"--skip {name}: no such shipped family or classical codec", flush=True)

  reports = {}
  for name in classical_names:
    points = evaluate.classical_points(name, None)
    keys = {p.key for p in points[2]}
    reports[name] = run(
        os.path.join(out, f"{points[0]}.json"), points[0],
        lambda output, points=points: evaluate.evaluate(*points, files, output,
                                                        per_image=True),
        args.rerun, lambda report, keys=keys: stale(report, images, lambda k: k, keys))

  ours = {}
  for key, (model, name) in learned.items():
    prints = fingerprints(model)
    report = run(
        os.path.join(out, f"{name}.json"), name,
        lambda output, model=model, name=name: evaluate_model(model, name, files, output),
        args.rerun,
        lambda report, prints=prints: stale(report, images, fingerprint_of, prints))
    ours[key] = report
    if args.dataset == "kodak" and model in zoo.family_names():
      record_kodak(model, report, f"benchmarks/results/kodak/{name}.json")

  anchors = ([results.load(os.path.join(SHARED, a)) for a in KODAK_ANCHORS]
             if args.dataset == "kodak" else [])
  fileio.atomic_write(os.path.join(out, "rd.png"), plots.plot_rd(
      list(ours.values()) + [reports[n] for n, _ in CLASSICAL_REFERENCES if n in reports],
      f"{label} ({len(files)} images)", anchors), overwrite=True)

  baseline = ours.get(args.baseline)
  references = [(reports.get(n), title) for n, title in CLASSICAL_REFERENCES]
  references.append((baseline, args.baseline if baseline else
                     f"{args.baseline} (not evaluated)"))
  lines = [f"# Rate–distortion on {label}: {len(files)} images "
           f"({os.path.relpath(os.path.abspath(data), ROOT)})", "",
           "Made by `python benchmarks/rd_curves.py"
           + "".join(" " + shlex.quote(a) for a in (argv if argv is not None
                                                      else sys.argv[1:])) + "`"
           + (f"; not evaluated: {', '.join(sorted(skip))} (--skip)" if skip else "")
           + "."]
  if args.note:
    lines += ["", args.note]
  for metric, title in (("psnr-rgb", "PSNR-RGB"), ("ms-ssim-rgb", "MS-SSIM-RGB")):
    lines += ["", f"## BD-rate, {title}", "",
              "| model | points | " + " | ".join(f"vs {t}" for _, t in references) + " |",
              "|---|---|" + "---|" * len(references)]
    for report in ours.values():
      row = [report["name"], str(len(report["results"]["bpp"]))]
      row += [compare(report, reference, metric) for reference, _ in references]
      lines.append("| " + " | ".join(row) + " |")
  lines += ["", "BD-rate (Bjøntegaard, `tfc_codecs.evaluation.bdrate`, PCHIP): the average "
            "bit difference at equal quality, negative = fewer bits than the reference; in "
            "brackets the quality range both curves cover, over which the interpolants are "
            "integrated (PSNR in dB; MS-SSIM as −10·log10(1 − MS-SSIM) dB). Where a model has a single rate point: its value vs the "
            "reference's, interpolated at the model's bpp.", "",
            "## Rate points", "",
            "| codec | quality | bpp | PSNR-RGB dB | MS-SSIM | encode s | decode s |",
            "|---|---|---|---|---|---|---|"]
  for report in list(ours.values()) + list(reports.values()):
    r = report["results"]
    for i, quality in enumerate(r["quality"]):
      lines.append(f"| {report['name']} | {quality} | {r['bpp'][i]:.4f} | "
                   f"{r['psnr-rgb'][i]:.2f} | {r['ms-ssim-rgb'][i]:.4f} | "
                   f"{r['encoding_time'][i]:.3f} | {r['decoding_time'][i]:.3f} |")
  summary = "\n".join(lines) + "\n"
  fileio.atomic_write(os.path.join(out, "summary.md"), summary.encode(), overwrite=True)
  print(summary)


if __name__ == "__main__":
  main()
