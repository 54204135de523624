"""How far is a factorized-vr model's rate above what its latents need?

    python -m experiments.density_gap --model MODEL [--images 12] [--output PATH]

At each quality, compares the model's own rate estimate (its learned
densities, on rounded latents) with the empirical entropy of the same rounded
latents, channel by channel: a lower bound that a density fitted to exactly
these latents would reach. A large gap at some qualities means the densities
do not fit them (e.g. one density shared by every quality). Uses 320x320 crops
of the first BSDS500 training photos (not Kodak); writes JSON.
"""

import argparse
import os

import numpy as np
import tensorflow as tf

from benchmarks.common import ROOT, write_json

from tfc_codecs import api  # pylint: disable=wrong-import-position
from experiments.training_crops import DEFAULT_DATA, crop_latents  # pylint: disable=wrong-import-position


def empirical_bits(symbols: np.ndarray) -> float:
  """Sum over channels of the empirical entropy of integer symbols [N, C], in bits."""
  total = 0.
  for column in symbols.T:
    _, counts = np.unique(column, return_counts=True)
    total -= float((counts * np.log2(counts / counts.sum())).sum())
  return total


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="factorized")
  parser.add_argument("--images", type=int, default=12)
  parser.add_argument("--data", default=DEFAULT_DATA)
  parser.add_argument("--output")
  args = parser.parse_args()
  codec = api.load(args.model)
  net = codec.net
  files, latents, pixels = crop_latents(net, args.data, args.images, 320)
  results = []
  for index in range(net.num_qualities):
    quality_index = tf.fill([latents.shape[0]], index)
    gain, _ = net._gains(quality_index)  # pylint: disable=protected-access
    y_hat, bits = net._latent_bits_at(latents * gain, quality_index, False)  # pylint: disable=protected-access
    symbols = np.round(y_hat.numpy()).astype(np.int64).reshape(-1, y_hat.shape[-1])
    model_bpp = float(tf.reduce_sum(bits)) / pixels
    entropy_bpp = empirical_bits(symbols) / pixels
    results.append({"quality": index + 1, "model_bpp": round(model_bpp, 4),
                    "empirical_entropy_bpp": round(entropy_bpp, 4),
                    "gap": round(model_bpp / entropy_bpp - 1, 4)})
    print(f"quality {index + 1}: model {model_bpp:.4f} bpp, empirical entropy "
          f"{entropy_bpp:.4f} bpp, gap {model_bpp / entropy_bpp - 1:+.1%}")
  output = args.output or os.path.join(
      ROOT, "experiments", "results", f"density_gap-{codec.meta['fingerprint']}.json")
  write_json(output, {"model": args.model, "fingerprint": codec.meta["fingerprint"],
                      "images": [os.path.basename(f) for f in files], "crop": [320, 320],
                      "results": results})


if __name__ == "__main__":
  main()
