"""Where the shipped rnn's time goes, next to the shipped hyperprior's.

    python -m experiments.rnn_profile [--image kodim23.png] [--reps 3] [--model rnn] [--tag TAG]

In one process, on one Kodak image: the public API's compress and decompress
of the rnn (default 8 iterations) and of the hyperprior (default quality),
interleaved (medians of --reps after a warm-up); then each part of one rnn
iteration as its own `tf.function` on that image's states: every convolution
(with its multiply-accumulates and GFLOP/s), each cell's gate arithmetic,
depth_to_space, the binarizer, and the entropy coding of the 8 iterations'
bits (channel-by-channel "channels" context model) with either coder. The
machine's matmul GFLOP/s in the same minutes says how close the convolutions
are to what the cores give. Writes experiments/results/rnn_profile-TAG.json.
"""

import argparse
import json
import os
import statistics
import time

from benchmarks.common import KODAK, ROOT, write_json

OUT = os.path.join(ROOT, "experiments", "results", "rnn_profile-{}.json")


def timed(fn, reps):
  """Median seconds of `reps` calls of fn after one warm-up call."""
  fn()
  runs = []
  for _ in range(reps):
    start = time.perf_counter()
    fn()
    runs.append(time.perf_counter() - start)
  return statistics.median(runs)


def conv_macs(layer, inputs):
  """Multiply-accumulates of a Conv2D layer on `inputs` [1, h, w, c]."""
  kh, kw, cin, cout = layer.kernel.shape
  stride = layer.strides[0]
  return inputs.shape[1] // stride * (inputs.shape[2] // stride) * kh * kw * cin * cout


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--image", default="kodim23.png")
  parser.add_argument("--model", default="rnn")
  parser.add_argument("--reps", type=int, default=3)
  parser.add_argument("--tag", default="now", help="Names the result file (e.g. the code version).")
  args = parser.parse_args()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  from tfc_codecs.entropy_coding.entropy_models import make_coder  # pylint: disable=import-outside-toplevel

  image, _ = images.read_image(os.path.join(KODAK, args.image))
  rnn, hyperprior = tfc_codecs.load(args.model), tfc_codecs.load("hyperprior")
  data = {"rnn": rnn.compress(image), "hyperprior": hyperprior.compress(image)}
  codecs = {"rnn": rnn, "hyperprior": hyperprior}
  api = {f"{name} {way}": [] for name in codecs for way in ("compress", "decompress")}
  for name, codec in codecs.items():  # Warm-up.
    codec.decompress(data[name])
  for _ in range(args.reps):
    for name, codec in codecs.items():
      for way, call in (("compress", lambda: codec.compress(image)),
                        ("decompress", lambda: codec.decompress(data[name]))):
        start = time.perf_counter()
        call()
        api[f"{name} {way}"].append(time.perf_counter() - start)
  api = {k: statistics.median(v) for k, v in api.items()}
  api["ratio compress"] = api["rnn compress"] / api["hyperprior compress"]
  api["ratio decompress"] = api["rnn decompress"] / api["hyperprior decompress"]
  print(json.dumps(api, indent=1), flush=True)

  # The parts of one iteration, on the states after 2 iterations of this image.
  net = rnn.net
  x = tf.cast(tf.constant(image)[None], tf.float32) / 255. - 0.5
  encoder_states, decoder_states = net._zero_states(x)  # pylint: disable=protected-access
  x_hat = tf.zeros_like(x)
  bits = []
  for t in range(8):
    codes, codes01, new_encoder = net._encode(x - x_hat, t, encoder_states, False)  # pylint: disable=protected-access
    if t == 2:
      saved = (x - x_hat, codes, encoder_states, decoder_states, x_hat)
    x_hat, decoder_states = net._decode(codes, t, x_hat, decoder_states)  # pylint: disable=protected-access
    encoder_states = new_encoder
    bits.append(tf.reshape(codes01, [-1, net.bits]))
  residual, codes, encoder_states, decoder_states, x_hat = saved

  parts = {}

  def part(name, fn, *inputs, macs=0):
    function = tf.function(fn)
    seconds = timed(lambda: function(*inputs), args.reps)
    parts[name] = dict(seconds=seconds, gmac=macs / 1e9,
                       gflops=2 * macs / seconds / 1e9 if macs else None)
    print(f"{name:40s} {seconds * 1e3:8.1f} ms  {macs / 1e9:6.2f} GMAC", flush=True)
    return function(*inputs)

  part("encoder: whole step", lambda r: net._encode(r, 2, encoder_states, False)[0], residual)  # pylint: disable=protected-access
  part("decoder: whole step", lambda c: net._decode(c, 2, x_hat, decoder_states)[0], codes)  # pylint: disable=protected-access
  y = part("encoder_conv", net.encoder_conv, residual, macs=conv_macs(net.encoder_conv, residual))
  for index, (cell, state) in enumerate(zip(net.encoder_cells, encoder_states)):
    prefix = f"encoder_rnn_{index + 1}"
    gates = part(f"{prefix} input_conv", cell.input_conv, y, macs=conv_macs(cell.input_conv, y))
    hidden = part(f"{prefix} hidden_conv", cell.hidden_conv, state[0],
                  macs=conv_macs(cell.hidden_conv, state[0]))
    part(f"{prefix} gates (add, split, LSTM)", lambda g, h, c: _lstm(g, h, c), gates, hidden, state[1])
    y = cell(y, state)[0]
  part("binarizer", lambda v: net.binarizer.binarize(v)[0], y, macs=conv_macs(net.binarizer.conv, y))
  y = part("decoder_conv", net.decoder_conv, codes, macs=conv_macs(net.decoder_conv, codes))
  for index, (cell, state) in enumerate(zip(net.decoder_cells, decoder_states)):
    prefix = f"decoder_rnn_{index + 1}"
    gates = part(f"{prefix} input_conv", cell.input_conv, y, macs=conv_macs(cell.input_conv, y))
    hidden = part(f"{prefix} hidden_conv", cell.hidden_conv, state[0],
                  macs=conv_macs(cell.hidden_conv, state[0]))
    part(f"{prefix} gates (add, split, LSTM)", lambda g, h, c: _lstm(g, h, c), gates, hidden, state[1])
    y = cell(y, state)[0]
    y = part(f"{prefix} depth_to_space", lambda v: tf.nn.depth_to_space(v, 2), y)
  part("decoder_out", net.decoder_out, y, macs=conv_macs(net.decoder_out, y))

  # Entropy coding of the 8 iterations' bits, with either coder.
  for ops in ("tfc", "stock"):
    net.coder = make_coder(ops, net.entropy_tables()["cdf"])

    def encode_all():
      previous = tf.zeros_like(bits[0])
      strings = []
      for t, codes01 in enumerate(bits):
        strings.append(net._encode_iteration(t, codes01, previous))  # pylint: disable=protected-access
        previous = codes01
      return tf.stack(strings)

    def decode_all(strings):
      previous = tf.zeros_like(bits[0])
      for t in range(len(bits)):
        previous = net._decode_iteration(t, strings[t], previous)  # pylint: disable=protected-access
      return previous

    payloads = part(f"entropy encode, 8 iterations ({ops})", encode_all)
    decoded = part(f"entropy decode, 8 iterations ({ops})", decode_all, payloads)
    assert np.array_equal(decoded.numpy(), bits[-1].numpy())

  a = tf.random.normal([2048, 2048])
  part("matmul 2048^3 (machine reference)", lambda m: tf.linalg.matmul(m, m), a, macs=2048 ** 3)
  write_json(OUT.format(args.tag), dict(image=args.image, model=args.model, reps=args.reps,
                       api_seconds=api, parts=parts))


def _lstm(gates, hidden_gates, cell):
  """The LSTM arithmetic of `layers.recurrent.ConvLSTM` after its convolutions."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  i, f, o, g = tf.split(gates + hidden_gates, 4, axis=-1)
  cell = tf.sigmoid(f) * cell + tf.sigmoid(i) * tf.tanh(g)
  return tf.sigmoid(o) * tf.tanh(cell)


if __name__ == "__main__":
  main()
