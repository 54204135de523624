"""How many bits could a richer context model save on the rnn codec's codes?

    python -m experiments.rnn_bit_context [--model rnn] [--images 12] [--fit_steps 300]

Codes all 16 iterations of every 40th BSDS500 photo (never Kodak), then
measures bits per binary code, on the half of the images not used for fitting:
- shipped: the model's own context model (`RnnCodec.code_logits`);
- previous: all 32 bits of the previous iteration at the same position
  (parallel: every context is known before an iteration decodes);
- previous+spatial: all 32 previous-iteration bits at the 3x3 positions around;
- channels: previous, plus the current iteration's lower channels at the same
  position (the form of the "channels" context model, refitted here; it
  decodes channel by channel, every position at once);
- channels+neighbours: the previous iteration's 3x3 neighbourhood, plus the
  current iteration's lower channels at the 3x3 positions around (still
  channel by channel, every position at once).
Each is a logistic model: convolutions of the {-1, 1} code maps (lower
channels masked) plus a bias per (iteration, channel), fitted by Adam on the
other half of the images. Writes experiments/results/rnn_bit_context-<fingerprint>.json.
"""

import argparse
import glob
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from benchmarks.common import BSDS500, ROOT, write_json

from tfc_codecs import api  # pylint: disable=wrong-import-position
from tfc_codecs.codecs.base import pad_to_multiple  # pylint: disable=wrong-import-position

# Context models: (kernel size on the previous iteration, on the current one; 0 = unused).
CONTEXTS = {"previous": (1, 0), "previous+spatial": (3, 0), "channels": (1, 1),
            "channels+neighbours": (3, 3)}


def image_codes(net, image, iterations):
  """Codes in {-1, 1}, [iterations, h/16, w/16, bits]."""
  x = tf.cast(pad_to_multiple(tf.constant(image)[None], 16), tf.float32) / 255. - 0.5
  encoder_states, decoder_states = net._zero_states(x)  # pylint: disable=protected-access
  x_hat = tf.zeros_like(x)
  codes = []
  for t in range(iterations):
    c, _, encoder_states = net._encode(x - x_hat, t, encoder_states, False)  # pylint: disable=protected-access
    x_hat, decoder_states = net._decode(c, t, x_hat, decoder_states)  # pylint: disable=protected-access
    codes.append(c.numpy()[0])
  return np.stack(codes).astype(np.float32)


def model_bits(net, codes):
  """Total bits of the codes under the model's own context model."""
  codes01 = tf.cast(codes > 0, tf.int32)
  bits = []
  for t in range(len(codes)):
    previous = codes01[t - 1] if t else tf.zeros_like(codes01[0])
    logits = net.code_logits(t, codes01[t], previous)
    bits.append(tf.math.softplus(-tf.cast(codes[t], tf.float32) * logits) / np.log(2.))
  return float(tf.reduce_sum(tf.stack(bits)))


class Logistic(tf.Module):
  """Logits [iterations, h, w, bits] of a context model on code maps."""

  def __init__(self, iterations, bits, previous_kernel, current_kernel):
    super().__init__()
    self.previous = tf.Variable(tf.zeros([previous_kernel, previous_kernel, bits, bits]))
    self.current = (tf.Variable(tf.zeros([current_kernel, current_kernel, bits, bits]))
                    if current_kernel else None)
    self.lower = tf.constant(np.triu(np.ones([bits, bits]), 1), tf.float32)  # [c', c]: c' < c.
    self.bias = tf.Variable(tf.zeros([iterations, bits]))

  def __call__(self, codes):
    previous = tf.concat([tf.zeros_like(codes[:1]), codes[:-1]], 0)
    logits = tf.nn.conv2d(previous, self.previous, 1, "SAME") + self.bias[:, None, None, :]
    if self.current is not None:
      logits += tf.nn.conv2d(codes, self.current * self.lower, 1, "SAME")
    return logits


def mean_bits(model, code_maps):
  """Mean bits per code of `model` over a list of code maps."""
  total = tf.add_n([tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
      tf.cast(c > 0, tf.float32), model(c))) for c in code_maps])
  return total / sum(c.size for c in code_maps) / np.log(2.)


def fit(model, code_maps, steps):
  optimizer = tf.keras.optimizers.Adam(0.05)
  step = tf.function(lambda: optimizer.minimize(lambda: mean_bits(model, code_maps),
                                                model.trainable_variables))
  for _ in range(steps):
    step()
  return model


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
  code_maps = [image_codes(net, np.asarray(Image.open(p).convert("RGB")), iterations)
               for p in paths]
  fitting, testing = code_maps[0::2], code_maps[1::2]
  test_codes = sum(c.size for c in testing)
  results = {"shipped": sum(model_bits(net, c) for c in testing) / test_codes}
  for key, kernels in CONTEXTS.items():
    model = fit(Logistic(iterations, net.bits, *kernels), fitting, args.fit_steps)
    results[key] = float(mean_bits(model, testing))
  for key, value in results.items():
    print(f"{key:28s} {value:.4f} bits per code ({100 * (1 - value):.1f}% under raw)")
  fingerprint = codec.meta["fingerprint"]
  write_json(os.path.join(ROOT, "experiments", "results", f"rnn_bit_context-{fingerprint}.json"),
             dict(model=args.model, fingerprint=fingerprint, images=[os.path.basename(p) for p in paths],
                  codes=int(sum(c.size for c in code_maps)),
                  test_codes=test_codes, fit_steps=args.fit_steps,
                  bits_per_code=results))


if __name__ == "__main__":
  main()
