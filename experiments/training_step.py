"""Training speed and fidelity of bfloat16 convolutions (`train --conv_dtype`).

    python -m experiments.training_step [--model hyperprior] [--steps 120]
    python -m experiments.training_step --model rnn --patch_size 32 --batch_size 32

Speed: runs the real `train` loop (BSDS500 crops, from the shipped model;
`--quantization mixed` for the Ballé codecs) with float32 and with bfloat16
convolutions and reports steps/s after the first log interval (tracing).
Fidelity: the shipped model's weights built both ways, the quantized forward
pass on BSDS500 crops at each quality (the rnn: at its training iterations):
PSNR of the bfloat16 reconstruction against the float32 one and the relative
change of the estimated bits. Writes
experiments/results/training_step-<codec>.json.
"""

import argparse
import os
import re
import tempfile

import numpy as np
import tensorflow as tf

from benchmarks.common import BSDS500, ROOT, write_json

from tfc_codecs import api, registry, training  # pylint: disable=wrong-import-position
from tfc_codecs.layers import precision  # pylint: disable=wrong-import-position
from experiments.training_crops import training_crops  # pylint: disable=wrong-import-position


def steps_per_second(model: str, net, conv_dtype: str, args) -> float:
  """Mean steps/s of the log intervals after the first (which traces)."""
  lines = []
  with tempfile.TemporaryDirectory() as run:
    training.train(training.TrainConfig(
        net.codec_name, run, train_glob=BSDS500, patch_size=args.patch_size,
        batch_size=args.batch_size, max_steps=args.steps, learning_rate=1e-5, init_from=model,
        training_options={"quantization": "mixed"} if _quantization(net) == "mixed" else {},
        conv_dtype=conv_dtype, min_scale=0.6, log_every=args.steps // 4),
        printer=lines.append)
  rates = [float(m.group(1)) for m in map(re.compile(r"([\d.]+) steps/s").search, lines) if m]
  return float(np.mean(rates[1:]))


def _quantization(net) -> str:
  return "mixed" if hasattr(net, "quantization") else "noise"


def fidelity(net, crops) -> list:
  """Per quality: the bfloat16 build's reconstruction and bits against float32's."""
  with precision.conv_dtype("bfloat16"):
    bf16 = type(net)(**net.config)
  for target, source in zip(bf16.weights, net.weights):
    target.assign(source)
  if hasattr(net, "_forward_at"):  # Variable rate: every quality.
    forwards = [(index + 1, lambda model, q=index: model._forward_at(  # pylint: disable=protected-access
        crops, tf.fill([crops.shape[0]], q), False)) for index in range(net.num_qualities)]
  else:
    forwards = [(None, lambda model: model(crops, training=False))]
  rows = []
  for quality, forward in forwards:
    want, want_bits = forward(net)
    got, bits = forward(bf16)
    difference = float(tf.reduce_mean(tf.math.squared_difference(got, want)))
    rows.append({"quality": quality,
                 "psnr_float32": round(float(_psnr(crops, want)), 3),
                 "psnr_bfloat16": round(float(_psnr(crops, got)), 3),
                 "psnr_bfloat16_vs_float32": round(10 * np.log10(255 ** 2 / difference), 1),
                 "bits_change": round(float(tf.reduce_sum(bits) / tf.reduce_sum(want_bits)) - 1, 5)})
    print(rows[-1])
  return rows


def _psnr(x, x_hat):
  return 10 * np.log10(255 ** 2 / float(tf.reduce_mean(tf.math.squared_difference(x, x_hat))))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="hyperprior")
  parser.add_argument("--steps", type=int, default=120)
  parser.add_argument("--patch_size", type=int, default=128)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--images", type=int, default=8)
  parser.add_argument("--output")
  args = parser.parse_args()
  codec = api.load(args.model)
  net = codec.net
  speed = {dtype: round(steps_per_second(args.model, net, dtype, args), 2)
           for dtype in precision.CONV_DTYPES}
  print("steps/s", speed)
  _, crops = training_crops(BSDS500, args.images, 128)  # A multiple of every downsampling.
  report = {
      "model": args.model, "codec": net.codec_name, "fingerprint": codec.meta["fingerprint"],
      "train": {"batch_size": args.batch_size, "patch_size": args.patch_size,
                "quantization": _quantization(net), "steps": args.steps},
      "steps_per_second": speed,
      "speedup": round(speed["bfloat16"] / speed["float32"], 2),
      "fidelity_crops": [args.images, 128, 128],
      "fidelity": fidelity(net, crops),
  }
  output = args.output or os.path.join(
      ROOT, "experiments", "results", f"training_step-{net.codec_name}.json")
  write_json(output, report)
  print("wrote", output)


if __name__ == "__main__":
  main()
