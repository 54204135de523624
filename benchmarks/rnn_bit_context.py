"""How many bits could a richer context model save on the rnn codec's codes?

    python benchmarks/rnn_bit_context.py [--model rnn] [--images 12] [--fit_steps 300]

Codes all 16 iterations of every 40th BSDS500 photo (never Kodak), then
measures bits per binary code, on the half of the images not used for fitting:
- shipped: the model's own context model (`RnnCodec.code_logits`);
- previous: a logistic model on all 32 bits of the previous iteration at the
  same position (parallel: every context is known before an iteration decodes);
- previous+spatial: plus the same channel's previous-iteration 3x3 neighbours;
- previous+spatial+channels: plus the current iteration's lower channels at
  the same position (decoding would be sequential over the 32 channels).
The logistic models have one weight vector per channel and a bias per
(iteration, channel), fitted by Adam on the other half of the images.
Writes benchmarks/results/rnn_bit_context-<fingerprint>.json.
"""

import argparse
import glob
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from common import BSDS500, ROOT, write_json

from tfc_codecs import api  # pylint: disable=wrong-import-position
from tfc_codecs.codecs.base import pad_to_multiple  # pylint: disable=wrong-import-position


def image_codes(net, image, iterations):
  """Codes in {-1, 1}, [iterations, h/16, w/16, bits]."""
  x = tf.cast(pad_to_multiple(tf.constant(image)[None], 16), tf.float32) / 255. - 0.5
  encoder_states, decoder_states = net._zero_states(x)  # pylint: disable=protected-access
  x_hat = tf.zeros_like(x)
  codes = []
  for t in range(iterations):
    c, encoder_states = net._encode(x - x_hat, t, encoder_states, False)  # pylint: disable=protected-access
    x_hat, decoder_states = net._decode(c, t, x_hat, decoder_states)  # pylint: disable=protected-access
    codes.append(c.numpy()[0])
  return np.stack(codes)


def model_bits(net, codes):
  """Bits [n, bits] of each code under the model's own context model."""
  codes01 = tf.cast(codes > 0, tf.int32)
  bits = []
  for t in range(len(codes)):
    previous = codes01[t - 1] if t else tf.zeros_like(codes01[0])
    logits = net.code_logits(t, codes01[t], previous)
    bits.append(tf.math.softplus(-tf.cast(codes[t], tf.float32) * logits) / np.log(2.))
  return tf.reshape(tf.stack(bits), [-1, codes.shape[-1]]).numpy()


def features(codes):
  """Per code [n, bits, ...]: the three context feature sets."""
  iterations, height, width, bits = codes.shape
  previous = np.concatenate([np.zeros_like(codes[:1]), codes[:-1]])
  padded = np.pad(previous, ((0, 0), (1, 1), (1, 1), (0, 0)))
  spatial = np.stack([padded[:, dy:dy + height, dx:dx + width]
                      for dy in range(3) for dx in range(3)], -1)
  n = iterations * height * width
  same_position = np.repeat(previous.reshape(n, 1, bits), bits, 1)
  lower_channels = (np.repeat(codes.reshape(n, 1, bits), bits, 1)
                    * np.tril(np.ones((bits, bits)), -1)[None])
  with_spatial = np.concatenate([same_position, spatial.reshape(n, bits, 9)], -1)
  return {"previous": same_position, "previous+spatial": with_spatial,
          "previous+spatial+channels": np.concatenate([with_spatial, lower_channels], -1)}


def fit_logistic(x, y, t, iterations, steps):
  """Weights [bits, d] and biases [iterations, bits] of a logistic model."""
  bits, dims = x.shape[1], x.shape[2]
  weights = tf.Variable(tf.zeros([bits, dims]))
  biases = tf.Variable(tf.zeros([iterations, bits]))
  optimizer = tf.keras.optimizers.Adam(0.05)
  for _ in range(steps):
    with tf.GradientTape() as tape:
      logits = tf.einsum("ncd,cd->nc", x, weights) + tf.gather(biases, t)
      loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
    optimizer.apply_gradients(zip(tape.gradient(loss, [weights, biases]), [weights, biases]))
  return weights, biases


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="rnn")
  parser.add_argument("--images", type=int, default=12)
  parser.add_argument("--fit_steps", type=int, default=300)
  args = parser.parse_args()
  codec = api.load(args.model)
  net = codec.net
  iterations = net.max_iterations
  paths = sorted(glob.glob(os.path.join(BSDS500, "*.jpg")))[::40][:args.images]
  sets, shipped, labels, steps, halves = {}, [], [], [], []
  for i, path in enumerate(paths):
    codes = image_codes(net, np.asarray(Image.open(path).convert("RGB")), iterations)
    for key, value in features(codes).items():
      sets.setdefault(key, []).append(value.astype(np.float32))
    shipped.append(model_bits(net, codes))
    labels.append((codes.reshape(len(shipped[-1]), -1) > 0).astype(np.float32))
    steps.append(np.arange(iterations).repeat(codes.shape[1] * codes.shape[2]))
    halves.append(np.full(len(shipped[-1]), i % 2))
  y, t, test = np.concatenate(labels), np.concatenate(steps), np.concatenate(halves) == 1
  results = {"shipped": float(np.concatenate(shipped)[test].mean())}
  for key, value in sets.items():
    x = np.concatenate(value)
    weights, biases = fit_logistic(x[~test], y[~test], t[~test], iterations, args.fit_steps)
    test_logits = tf.einsum("ncd,cd->nc", x[test], weights) + tf.gather(biases, t[test])
    results[key] = float(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        y[test], test_logits)) / np.log(2))
  for key, value in results.items():
    print(f"{key:28s} {value:.4f} bits per code ({100 * (1 - value):.1f}% under raw)")
  fingerprint = codec.meta["fingerprint"]
  write_json(os.path.join(ROOT, "benchmarks", "results", f"rnn_bit_context-{fingerprint}.json"),
             dict(model=args.model, fingerprint=fingerprint, images=[os.path.basename(p) for p in paths],
                  codes=int(y.size), test_codes=int(y[test].size), fit_steps=args.fit_steps,
                  bits_per_code=results))


if __name__ == "__main__":
  main()
