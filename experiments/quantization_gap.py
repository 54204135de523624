"""What does training with uniform noise hide from a Ballé model's decoder?

    python -m experiments.quantization_gap --model MODEL [--images 8] [--output PATH]

At each quality, runs the model's training pass with noisy latents and its
decoding pass with rounded latents on the same crops, and reports the bpp
estimate and the PSNR of each: the gap is the train/test mismatch that
`train --quantization mixed` removes from the decoder's side. Uses 256x256
crops of the first BSDS500 training photos (not Kodak); writes JSON.
"""

import argparse
import os

import numpy as np
import tensorflow as tf

from benchmarks.common import ROOT, write_json

from tfc_codecs import api  # pylint: disable=wrong-import-position
from experiments.training_crops import DEFAULT_DATA, training_crops  # pylint: disable=wrong-import-position
from tfc_codecs.codecs.variable_rate import VariableRate  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="factorized")
  parser.add_argument("--images", type=int, default=8)
  parser.add_argument("--data", default=DEFAULT_DATA)
  parser.add_argument("--output")
  args = parser.parse_args()
  codec = api.load(args.model)
  net = codec.net
  files, x = training_crops(args.data, args.images, 256)
  pixels = int(np.prod(x.shape[:3]))
  qualities = range(net.num_qualities) if isinstance(net, VariableRate) else [None]
  results = []
  for index in qualities:
    row = {"quality": None if index is None else index + 1}
    for name, training in (("noise", True), ("rounded", False)):
      tf.random.set_seed(0)
      if index is None:
        x_hat, bits = net(x, training=training)
      else:
        x_hat, bits = net._forward_at(x, tf.fill([x.shape[0]], index), training)  # pylint: disable=protected-access
      mse = float(tf.reduce_mean(tf.math.squared_difference(x, tf.clip_by_value(x_hat, 0., 255.))))
      row[f"bpp_{name}"] = round(float(tf.reduce_sum(bits)) / pixels, 4)
      row[f"psnr_{name}"] = round(10 * np.log10(255. ** 2 / mse), 3)
    row["psnr_gap_db"] = round(row["psnr_noise"] - row["psnr_rounded"], 3)
    results.append(row)
    print(row, flush=True)
  report = {"model": args.model, "fingerprint": codec.meta["fingerprint"],
            "images": [os.path.basename(f) for f in files], "crop": 256, "results": results}
  output = args.output or os.path.join(
      ROOT, "experiments", "results", f"quantization_gap-{args.model}.json")
  write_json(output, report)


if __name__ == "__main__":
  main()
