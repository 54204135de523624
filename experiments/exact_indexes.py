"""Rate cost of the hyperprior's fixed-point scale indexes, on Kodak.

    python -m experiments.exact_indexes [--model hyperprior] [--data ../shared/data/kodak]

The decoder computes scale-table indexes with `exact_hyper_synthesis`, so that
every machine gets the same integers. The reconstruction does not depend on the
indexes (the latents are rounded either way), only the rate does: this script
codes every image at every quality with the exact indexes and with rounded
float32 ones and reports the bpp of both and the BD-rate between the curves.
Writes experiments/results/exact_indexes.json.
"""

import argparse
import json
import os
import sys

import numpy as np

from benchmarks.common import KODAK, ROOT, write_json

os.environ["TF2_BEHAVIOR"] = "1"

import tensorflow as tf  # pylint: disable=wrong-import-position

import tfc_codecs  # pylint: disable=wrong-import-position
from tfc_codecs import images  # pylint: disable=wrong-import-position
from tfc_codecs.codecs.base import pad_to_multiple  # pylint: disable=wrong-import-position
from tfc_codecs.evaluation import bdrate  # pylint: disable=wrong-import-position

OUT = os.path.join(ROOT, "experiments", "results", "exact_indexes.json")


def payload_bits(net, image, quality, exact):
  """Bits of the side and latent strings with exact or float32 indexes."""
  x = pad_to_multiple(tf.cast(image, tf.float32)[None], net.downsampling)
  y = net.analysis(x)
  if quality:
    y *= net._gains(tf.constant([quality - 1]))[0]  # pylint: disable=protected-access
  z = net.hyper_analysis(y)
  z_hat = tf.round(z)
  indexes = net.scale_indexes(z_hat) if exact else tf.round(net.hyper_synthesis(z_hat))
  strings = [net.side_coder.compress(z), net.coder.compress(y, indexes)]
  return 8 * sum(len(s.numpy()[0]) for s in strings)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="hyperprior")
  parser.add_argument("--data", default=KODAK)
  args = parser.parse_args()
  codec = tfc_codecs.load(args.model)
  files = images.list_images(args.data)
  kodak = [images.read_image(f)[0] for f in files]
  pixels = sum(i.shape[0] * i.shape[1] for i in kodak) / len(kodak)
  qualities = list(range(1, codec.num_qualities + 1)) or [0]
  report = dict(model=args.model, fingerprint=codec.fingerprint.hex(), images=len(kodak),
                command=" ".join(["python"] + sys.argv), results=[])
  for quality in qualities:
    bits = {mode: np.mean([payload_bits(codec.net, image, quality, mode == "exact")
                           for image in kodak]) / pixels for mode in ("exact", "float32")}
    report["results"].append(dict(quality=quality, bpp_exact=round(float(bits["exact"]), 5),
                                  bpp_float32=round(float(bits["float32"]), 5),
                                  rate_change_percent=round(100 * float(
                                      bits["exact"] / bits["float32"] - 1), 3)))
    print(report["results"][-1], flush=True)
  if len(qualities) >= 2:  # Same distortion at each point: any increasing curve will do.
    distortion = list(range(len(qualities)))
    report["bd_rate_percent"] = round(bdrate.bd_rate(
        [r["bpp_float32"] for r in report["results"]], distortion,
        [r["bpp_exact"] for r in report["results"]], distortion), 3)
  write_json(OUT, report)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main()
