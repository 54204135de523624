"""R–D cost of the synthesis' up-convolution kernels (`layers/upsampling.py`):
the validation set's files decoded with the transposed convolution (before)
and the polyphase correlations (now).

Both decode the same bitstreams, so rates are identical and only PSNR can
move: per quality, mean PSNR-RGB of each kernel, the samples that differ, and
the BD-rate of polyphase vs transposed over the qualities run.

  python -m experiments.transform_rd_check --out experiments/results/transform_rd_check.json
"""

import argparse
import glob
import json

import numpy as np
import tensorflow as tf

from tfc_codecs import images
from tfc_codecs.evaluation.bdrate import bd_rate
from experiments.transform_kernels import KERNELS, decoder, load, psnr


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--images", default="../shared/data/validation/*.png")
  parser.add_argument("--codecs", default="channelwise,hyperprior,factorized")
  parser.add_argument("--qualities", default="1,4,7")
  parser.add_argument("--limit", type=int, default=0, help="The first N images only (0: all).")
  parser.add_argument("--out", default="experiments/results/transform_rd_check.json")
  args = parser.parse_args()
  paths = sorted(glob.glob(args.images))[:args.limit or None]
  result = dict(images=args.images, count=len(paths), codecs={})
  for name in args.codecs.split(","):
    net, _ = load(name)
    rows = []
    for quality in [int(q) for q in args.qualities.split(",")]:
      q = [tf.constant(quality)]
      psnrs = {kind: [] for kind in KERNELS}
      bits, differing, beyond_1, samples = 0, 0, 0, 0
      decoders = None
      for path in paths:
        image, _ = images.read_image(path)
        image = image[..., :3]
        payloads = net.compress(tf.constant(image), *q)
        shape = tf.constant(image.shape[:2], tf.int32)
        if decoders is None:
          decoders = {kind: decoder(net, (payloads, shape, *q), kind) for kind in KERNELS}
        decoded = {kind: fn(payloads, shape, *q).numpy() for kind, fn in decoders.items()}
        for kind in KERNELS:
          psnrs[kind].append(psnr(decoded[kind], image))
        diff = np.abs(decoded["transposed"].astype(int) - decoded["polyphase"].astype(int))
        differing += int(np.count_nonzero(diff))
        beyond_1 += int(np.count_nonzero(diff > 1))
        samples += diff.size
        bits += 8 * sum(len(p) for p in payloads.numpy())
      rows.append(dict(quality=quality, bpp=bits / (samples / 3),
                       psnr={kind: float(np.mean(v)) for kind, v in psnrs.items()},
                       psnr_difference=float(np.mean(psnrs["polyphase"]) - np.mean(psnrs["transposed"])),
                       samples_differing=differing, beyond_1=beyond_1, samples=samples))
      print(name, rows[-1], flush=True)
    rates = [r["bpp"] for r in rows]
    entry = dict(qualities=rows)
    if len(rows) > 1:
      entry["bd_rate_percent"] = bd_rate(rates, [r["psnr"]["transposed"] for r in rows],
                                         rates, [r["psnr"]["polyphase"] for r in rows])
    result["codecs"][name] = entry
    with open(args.out, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
