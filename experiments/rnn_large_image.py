"""Peak memory and time of the rnn codec on a large image (tiled coding).

    python -m experiments.rnn_large_image [--height 3000 --width 4000] [--iterations 2]
        [--width_multiplier 1.0] [--model PATH]

Runs compress and decompress in separate child processes and reports each
one's peak resident memory (ru_maxrss). Without --model it uses the paper's
full-size architecture with random weights: memory and time do not depend on
the weights. Writes experiments/results/rnn_large_image.json.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from benchmarks.common import ROOT, write_json

OUT = os.path.join(ROOT, "experiments", "results", "rnn_large_image.json")


def child(args):
  os.environ["TF2_BEHAVIOR"] = "1"
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfc_codecs import model_dir  # pylint: disable=import-outside-toplevel
  from tfc_codecs.codecs.rnn import RnnCodec  # pylint: disable=import-outside-toplevel
  if args.model:
    net, _ = model_dir.load(args.model)
  else:
    net = RnnCodec(width=args.width_multiplier)
    net.freeze()
  rng = np.random.default_rng(0)
  coarse = rng.integers(0, 256, (args.height // 32 + 1, args.width // 32 + 1, 3))
  image = np.kron(coarse, np.ones((32, 32, 1)))[:args.height, :args.width].astype(np.uint8)
  start = time.monotonic()
  payloads = net.compress(tf.constant(image), args.iterations)
  encode = time.monotonic() - start
  if args.stage == "decompress":
    start = time.monotonic()
    decoded = net.decompress(payloads, tf.constant(image.shape[:2], tf.int32))
    seconds = time.monotonic() - start
    assert decoded.shape == image.shape
  else:
    seconds = encode
  print(json.dumps(dict(seconds=round(seconds, 2),
                        peak_rss_gib=round(resource.getrusage(
                            resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 3))))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--height", type=int, default=3000)
  parser.add_argument("--width", type=int, default=4000)
  parser.add_argument("--iterations", type=int, default=2)
  parser.add_argument("--width_multiplier", type=float, default=1.0)
  parser.add_argument("--model")
  parser.add_argument("--stage")
  args = parser.parse_args()
  if args.stage:
    return child(args)
  report = dict(image=f"{args.width}x{args.height}", iterations=args.iterations,
                model=args.model or f"random weights, width {args.width_multiplier}",
                command=" ".join(["python"] + sys.argv))
  for stage in ("compress", "decompress"):
    out = subprocess.run([sys.executable, "-m", "experiments.rnn_large_image", "--stage", stage]
                         + sys.argv[1:], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    report[stage] = json.loads(out.strip().splitlines()[-1])
  report["note"] = ("decompress runs compress first in the same process, so its "
                    "peak covers both")
  write_json(OUT, report)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main()
