"""How many bits does a hyperprior-vr model spend on side information, and
how far is its hyper-latent density from what those hyper-latents need?

    python -m experiments.side_information [--model hyperprior] [--images 40]
        [--refit_steps 300 --refit_patch 256 --refit_on rounded|noisy]

At each quality, on 320x320 crops of the first BSDS500 photos (never Kodak):
the side bits under the model's factorized hyper-latent density, the
empirical entropy of the same rounded hyper-latents (a lower bound: a
density fitted to exactly these values, one per quality), and the latents'
bits. With --refit_steps, the density alone (everything else fixed) is then
trained for that many Adam steps on random BSDS500 crops of --refit_patch
pixels at random qualities, on the rounded hyper-latents or on noisy ones as
in training, and measured again: what a better-fitted density would save.
Writes experiments/results/side_information-<fingerprint>[-refit-...].json.
"""

import argparse
import os

import numpy as np
import tensorflow as tf

from benchmarks.common import BSDS500, ROOT, write_json

from tfc_codecs import api, data  # pylint: disable=wrong-import-position
from experiments.density_gap import empirical_bits  # pylint: disable=wrong-import-position
from experiments.training_crops import crop_latents  # pylint: disable=wrong-import-position

REFIT_BATCH = 4


def measure(net, latents, pixels):
  """Per quality: side bpp, its empirical entropy, and the latents' bpp."""
  rows = []
  for index in range(net.num_qualities):
    gain, _ = net._gains(tf.fill([latents.shape[0]], index))  # pylint: disable=protected-access
    y = latents * gain
    z = net.hyper_analysis(y)
    z_hat, side_bits = net.side_bottleneck(z, training=False)
    _, bits = net.bottleneck(y, net.scale_indexes(z_hat), training=False)
    symbols = np.round(z_hat.numpy()).astype(np.int64).reshape(-1, z.shape[-1])
    side = float(tf.reduce_sum(side_bits)) / pixels
    entropy = empirical_bits(symbols) / pixels
    main = float(tf.reduce_sum(bits)) / pixels
    rows.append({"quality": index + 1, "side_bpp": round(side, 5),
                 "side_empirical_entropy_bpp": round(entropy, 5),
                 "side_gap": round(side / entropy - 1, 4), "latent_bpp": round(main, 5),
                 "side_fraction": round(side / (side + main), 4)})
    print(rows[-1])
  return rows


def refit(net, steps, patch, on, data_dir):
  """Trains only the hyper-latent density on rounded or noisy hyper-latents."""
  variables = net.hyperprior.trainable_variables
  optimizer = tf.keras.optimizers.Adam(1e-3)
  batches = iter(data.training_dataset(patch, REFIT_BATCH, train_glob=data_dir,
                                       min_scale=0.6, seed=0))

  @tf.function
  def step(x):
    index = tf.random.uniform([REFIT_BATCH], 0, net.num_qualities, tf.int32)
    gain, _ = net._gains(index)  # pylint: disable=protected-access
    z = tf.stop_gradient(net.hyper_analysis(net.analysis(x) * gain))
    with tf.GradientTape() as tape:
      if on == "rounded":
        _, bits = net.side_bottleneck(tf.round(z), training=False)
      else:
        _, bits = net.side_bottleneck(z, training=True)
      loss = tf.reduce_sum(bits) / float(REFIT_BATCH * patch * patch)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

  for _ in range(steps):
    step(next(batches))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="hyperprior")
  parser.add_argument("--images", type=int, default=40)
  parser.add_argument("--data", default=BSDS500)
  parser.add_argument("--refit_steps", type=int, default=0)
  parser.add_argument("--refit_patch", type=int, default=256)
  parser.add_argument("--refit_on", choices=("rounded", "noisy"), default="rounded")
  parser.add_argument("--output")
  args = parser.parse_args()
  codec = api.load(args.model)
  net = codec.net
  files, latents, pixels = crop_latents(net, args.data, args.images, 320)
  report = {"model": args.model, "fingerprint": codec.meta["fingerprint"],
            "images": [os.path.basename(f) for f in files], "crop": [320, 320],
            "results": measure(net, latents, pixels)}
  name = f"side_information-{codec.meta['fingerprint']}"
  if args.refit_steps:
    refit(net, args.refit_steps, args.refit_patch, args.refit_on, args.data)
    report["refit"] = {"steps": args.refit_steps, "patch": args.refit_patch,
                       "batch": REFIT_BATCH, "on": args.refit_on, "learning_rate": 1e-3,
                       "results": measure(net, latents, pixels)}
    name += f"-refit-{args.refit_on}-{args.refit_patch}"
  output = args.output or os.path.join(ROOT, "experiments", "results", f"{name}.json")
  write_json(output, report)
  print("wrote", output)


if __name__ == "__main__":
  main()
