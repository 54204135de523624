"""Cost of the stock-op entropy coder against tensorflow-compression's range coder, on Kodak.

    python benchmarks/stock_coder.py [--data ../shared/data/kodak] [--images 24]
        [--rnn_images 6] [--repeats 2]

For each shipped model (hyperprior, factorized, rnn), every image is
compressed and decompressed with both coders (`tfc_codecs.load(model,
ops="tfc"|"stock")`), alternating, `--repeats` times; the time of a call is
its fastest repeat, of the whole `compress` / `decompress` call (transforms
included), after a warm-up. Both coders code the same latents, so the decoded
images must be identical (checked). Each model runs at its default quality
for time; the variable-rate Ballé models also at every quality for rate. rnn,
the slowest, codes the first `--rnn_images` images. Writes
benchmarks/results/stock_coder.json and stock_coder.md.
"""

import argparse
import os
import sys
import time

import numpy as np

from common import KODAK, ROOT, write_json

os.environ["TF2_BEHAVIOR"] = "1"

import tfc_codecs  # pylint: disable=wrong-import-position
from tfc_codecs import images  # pylint: disable=wrong-import-position

OUT = os.path.join(ROOT, "benchmarks", "results", "stock_coder")
MODELS = ("hyperprior", "factorized", "rnn")  # Shipped model names.


def timed(function, *args):
  start = time.perf_counter()
  result = function(*args)
  return result, time.perf_counter() - start


def measure(model, quality, kodak, repeats):
  """Per-image bytes and fastest compress/decompress seconds of both coders."""
  codecs = {ops: tfc_codecs.load(model, ops=ops) for ops in ("tfc", "stock")}
  for codec in codecs.values():  # Warm-up (tracing).
    codec.decompress(codec.compress(kodak[0][:64, :64], quality))
  rows = []
  for image in kodak:
    best = {ops: [np.inf, np.inf] for ops in codecs}
    files = {}
    for _ in range(repeats):
      for ops, codec in codecs.items():
        files[ops], seconds = timed(codec.compress, image, quality)
        best[ops][0] = min(best[ops][0], seconds)
      for ops, codec in codecs.items():
        decoded, seconds = timed(codec.decompress, files[ops])
        best[ops][1] = min(best[ops][1], seconds)
        if ops == "tfc":
          reference = decoded
        elif not np.array_equal(decoded, reference):
          raise AssertionError("the coders decoded different images")
    rows.append({ops: dict(bytes=len(files[ops]), compress_s=best[ops][0],
                           decompress_s=best[ops][1]) for ops in codecs})
  return rows


def rate_only(model, quality, kodak):
  """Mean file bytes of both coders at `quality`."""
  codecs = {ops: tfc_codecs.load(model, ops=ops) for ops in ("tfc", "stock")}
  return {ops: float(np.mean([len(c.compress(i, quality)) for i in kodak]))
          for ops, c in codecs.items()}


def summarize(rows):
  total = {ops: {k: sum(r[ops][k] for r in rows) for k in rows[0][ops]} for ops in rows[0]}
  return dict(
      images=len(rows),
      mean_bytes={ops: total[ops]["bytes"] / len(rows) for ops in total},
      rate_overhead_percent=100. * (total["stock"]["bytes"] / total["tfc"]["bytes"] - 1),
      mean_compress_s={ops: total[ops]["compress_s"] / len(rows) for ops in total},
      mean_decompress_s={ops: total[ops]["decompress_s"] / len(rows) for ops in total},
      compress_time_ratio=total["stock"]["compress_s"] / total["tfc"]["compress_s"],
      decompress_time_ratio=total["stock"]["decompress_s"] / total["tfc"]["decompress_s"])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", default=KODAK)
  parser.add_argument("--images", type=int, default=24, help="Kodak images per model.")
  parser.add_argument("--rnn_images", type=int, default=6, help="Kodak images for rnn.")
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  files = images.list_images(args.data)
  kodak = [images.read_image(f)[0] for f in files[:max(args.images, args.rnn_images)]]
  report = dict(command=" ".join(["python"] + sys.argv), load=os.getloadavg(),
                note="time = fastest of --repeats whole compress/decompress calls",
                models={})
  for name in MODELS:
    codec = tfc_codecs.load(name)
    quality = codec.net.default_quality if codec.num_qualities else None
    subset = kodak[:args.rnn_images if codec.progressive else args.images]
    rows = measure(name, quality, subset, args.repeats)
    report["models"][name] = dict(
        quality=quality, fingerprint=codec.fingerprint.hex(), **summarize(rows), per_image=rows)
    if codec.num_qualities and not codec.progressive:
      report["models"][name]["rate_by_quality"] = {
          q: rate_only(name, q, subset) for q in range(1, codec.num_qualities + 1)}
  report["load_after"] = os.getloadavg()
  write_json(OUT + ".json", report, indent=1)
  lines = [f"`{report['command']}` (load average {report['load'][0]:.1f} "
           "at the start: timings share the 2 cores with what else ran)", "",
           "| model | quality | images | tfc bytes | stock bytes | rate overhead | "
           "compress s tfc / stock (ratio) | decompress s tfc / stock (ratio) |",
           "|---|---|---|---|---|---|---|---|"]
  for name, r in report["models"].items():
    lines.append(
        f"| {name} | {r['quality']} | {r['images']} | {r['mean_bytes']['tfc']:.0f} | "
        f"{r['mean_bytes']['stock']:.0f} | {r['rate_overhead_percent']:+.2f}% | "
        f"{r['mean_compress_s']['tfc']:.3f} / {r['mean_compress_s']['stock']:.3f} "
        f"({r['compress_time_ratio']:.2f}x) | {r['mean_decompress_s']['tfc']:.3f} / "
        f"{r['mean_decompress_s']['stock']:.3f} ({r['decompress_time_ratio']:.2f}x) |")
  for name, model in report["models"].items():
    if "rate_by_quality" not in model:
      continue
    lines += ["", f"{name} rate at every quality (mean bytes per Kodak image):", "",
              "| quality | tfc | stock | overhead |", "|---|---|---|---|"]
    for q, r in model["rate_by_quality"].items():
      lines.append(f"| {q} | {r['tfc']:.0f} | {r['stock']:.0f} | "
                   f"{100 * (r['stock'] / r['tfc'] - 1):+.2f}% |")
  with open(OUT + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
