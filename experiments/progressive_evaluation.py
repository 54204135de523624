"""Cost of `evaluate` on a progressive codec against one top-quality compress
+ decompress per image, in one process (issue #35: at most 1.2x).

    python -m experiments.progressive_evaluation [--model rnn] [--images 3]

Writes experiments/results/progressive_evaluation.json.
"""

import argparse
import glob
import json
import os
import tempfile
import time

import tfc_codecs
from tfc_codecs import images
from tfc_codecs.evaluation import evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KODAK = os.path.join(os.path.dirname(ROOT), "shared", "data", "kodak")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="rnn")
  parser.add_argument("--images", type=int, default=3, help="the first N Kodak images")
  parser.add_argument("--output", default=os.path.join(ROOT, "experiments", "results",
                                                       "progressive_evaluation.json"))
  args = parser.parse_args()
  codec = tfc_codecs.load(args.model)
  files = sorted(glob.glob(os.path.join(KODAK, "*.png")))[:args.images]
  top = codec.num_qualities
  codec.decompress(codec.compress(images.read_image(files[0])[0][:64, :64], top))  # Tracing.
  baseline = 0.
  for path in files:
    image = images.read_image(path)[0]
    start = time.perf_counter()
    codec.decompress(codec.compress(image, top))
    baseline += time.perf_counter() - start
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    evaluate.evaluate_progressive(args.model, args.model, codec, files,
                                  os.path.join(workdir, "out.json"), progress=False)
    evaluation = time.perf_counter() - start
  result = dict(model=args.model, images=[os.path.basename(f) for f in files],
                compress_plus_decompress_s=round(baseline, 2),
                evaluate_s=round(evaluation, 2), ratio=round(evaluation / baseline, 3),
                command="python -m experiments.progressive_evaluation " +
                f"--model {args.model} --images {args.images}")
  with open(args.output, "w") as f:
    json.dump(result, f, indent=1)
  print(json.dumps(result))


if __name__ == "__main__":
  main()
