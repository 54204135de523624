"""Where the transform codecs' time goes, kernel by kernel, and what the
synthesis' up-convolution kernels (transposed convolution on Eigen vs
polyphase correlations on oneDNN, `layers/upsampling.py`) and bfloat16 change.

For the shipped hyperprior, factorized and channelwise models at their default
quality, on one image (timing only: kodim23 by default; nothing is chosen on it):
* compress and decompress seconds, the two up-convolution kernels interleaved
  round by round in one process (the machine is shared: compare within a run);
* TensorFlow profiler op times per call, grouped by what they compute
  (analysis/synthesis layers, GDN/IGDN, the exact float64 chain, LRP, coding);
* decoded samples that differ between the kernels (the contract allows ±1);
* the synthesis in bfloat16 (where the CPU has avx512_bf16/AMX): time and
  how far its pixels move.

  python -m experiments.transform_kernels --out experiments/results/transform_kernels.json
"""

import argparse
import collections
import contextlib
import glob
import json
import re
import struct
import subprocess
import tempfile
import time

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow.python.profiler.internal import _pywrap_profiler  # pylint: disable=no-name-in-module

from tfc_codecs import model_dir, zoo
from tfc_codecs.codecs.base import to_uint8
from tfc_codecs.layers import precision, upsampling
from tfc_codecs.layers.gdn_transforms import SynthesisTransform

CODECS = ("hyperprior", "factorized", "channelwise")
KERNELS = ("transposed", "polyphase")


@contextlib.contextmanager
def up_kernel(kind):
  """Up-convolutions as `kind` in functions traced inside."""
  saved = upsampling.MIN_PHASE_FILTERS
  upsampling.MIN_PHASE_FILTERS = saved if kind == "polyphase" else 1 << 30
  try:
    yield
  finally:
    upsampling.MIN_PHASE_FILTERS = saved


def cpu_kind():
  text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
  model = re.search(r"Model name:\s*(.*)", text)
  flags = set(re.search(r"Flags:\s*(.*)", text).group(1).split()) if "Flags:" in text else set()
  return dict(model=model.group(1).strip() if model else "?",
              flags={f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")})


# The profiler's tensorflow_stats table (a TfStatsDatabase protobuf), read
# without its generated module: record fields 3 op type, 4 op name, 8 self µs.
def _fields(data):
  i = 0
  while i < len(data):
    key, i = _varint(data, i)
    field, kind = key >> 3, key & 7
    if kind == 0:
      value, i = _varint(data, i)
    elif kind == 1:
      value, i = struct.unpack("<d", data[i:i + 8])[0], i + 8
    elif kind == 2:
      size, i = _varint(data, i)
      value, i = data[i:i + size], i + size
    else:
      value, i = struct.unpack("<f", data[i:i + 4])[0], i + 4
    yield field, value


def _varint(data, i):
  value = shift = 0
  while True:
    byte = data[i]
    i += 1
    value |= (byte & 0x7f) << shift
    shift += 7
    if byte < 0x80:
      return value, i


def category(op_type, name):
  """What an op computes, from its type and name."""
  name = re.sub(r"(while|cond)(_\d+)?/(body|then|else)/_\d+/|(while|cond)(_\d+)?/", "", name)
  layer = re.search(r"layer_(\d)", name)
  if "hyper_analysis/" in name:
    return "hyper-analysis (float32)"
  if name.startswith("analysis/") and layer:
    return f"analysis layer_{layer.group(1)} " + ("GDN" if "gdn" in name else "conv")
  if re.match(r"lrp_\d", name):
    return "LRP context transforms (float32)"
  if re.match(r"layer_\d", name) and layer:
    return f"synthesis layer_{layer.group(1)} " + ("IGDN" if "igdn" in name else "up-conv")
  if op_type == "Conv2D":
    return "exact chain: float64 3x3 convs (context transforms, hyper-synthesis layer_2)"
  if op_type == "Conv2DBackpropInput":
    return "exact chain: float64 up-convs (hyper-synthesis layer_0/1)"
  if "Range" in op_type or "Coder" in op_type or "range" in name.lower():
    return "entropy coding"
  return "other (elementwise, slicing, casts, loops)"


def profile(fn, args, calls=3):
  """Op self time per call (ms), by category."""
  fn(*args)
  logdir = tempfile.mkdtemp()
  tf.profiler.experimental.start(logdir)
  for _ in range(calls):
    fn(*args)
  tf.profiler.experimental.stop()
  path = glob.glob(logdir + "/**/*.xplane.pb", recursive=True)[0]
  data, _ = _pywrap_profiler.xspace_to_tools_data([path], "tensorflow_stats", {})
  times = collections.Counter()
  for field, table in _fields(data):
    if field != 5:  # Without the idle time.
      continue
    for _, record in _fields(table):
      record = dict(_fields(record))
      times[category(record[3].decode(), record[4].decode())] += record[8] / 1e3 / calls
  return {k: round(v, 1) for k, v in sorted(times.items(), key=lambda kv: -kv[1])}


def load(name):
  net, _ = model_dir.load(zoo.resolve(name))
  quality = [tf.constant(net.default_quality)] if net.num_qualities else []
  return net, quality


def decoder(net, quality_args, kind):
  decompress = type(net).decompress.python_function
  with up_kernel(kind):
    fn = tf.function(lambda payloads, shape, *q: decompress(net, payloads, shape, *q))
    fn(*quality_args)  # Traced under `kind`.
  return fn


def psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return float(10 * np.log10(255 ** 2 / mse))


def bfloat16_synthesis(net, payloads, shape, quality, image):
  """Synthesis of the decoded latents in float32 (Keras layers) and bfloat16."""
  with precision.conv_dtype("bfloat16"):
    bf16 = SynthesisTransform(net.config["num_filters"])
  padded = -(-shape // net.downsampling) * net.downsampling
  if quality:  # pylint: disable=protected-access
    index = quality[0][None] - 1
    _, inverse = net._gains(index)
    y_hat = tf.function(lambda p: net._decode_latents_at(p, padded, index))(payloads) * inverse
  else:
    y_hat = tf.function(lambda p: net._decode_latents(p, padded))(payloads)  # pylint: disable=protected-access
  bf16(y_hat[:, :2, :2])
  bf16.set_weights(net.synthesis.get_weights())
  f32 = tf.function(lambda y: to_uint8(net.synthesis(y)))
  b16 = tf.function(lambda y: to_uint8(bf16(y)))
  times = {"float32": [], "bfloat16": []}
  for fn in (f32, b16):
    fn(y_hat)
  for _ in range(3):
    for key, fn in (("float32", f32), ("bfloat16", b16)):
      start = time.perf_counter()
      fn(y_hat)
      times[key].append(time.perf_counter() - start)
  height, width = image.shape[:2]
  a, b = f32(y_hat).numpy()[0, :height, :width], b16(y_hat).numpy()[0, :height, :width]
  diff = np.abs(a.astype(int) - b.astype(int))
  return dict(seconds={k: round(float(np.median(v)), 3) for k, v in times.items()},
              samples_differing=int(np.count_nonzero(diff)), beyond_1=int(np.count_nonzero(diff > 1)),
              max_difference=int(diff.max()), size=int(diff.size),
              psnr=dict(float32=round(psnr(a, image), 4), bfloat16=round(psnr(b, image), 4)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--image", default="../shared/data/kodak/kodim23.png")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--codecs", default=",".join(CODECS))
  parser.add_argument("--out", default="experiments/results/transform_kernels.json")
  args = parser.parse_args()
  image = np.asarray(Image.open(args.image).convert("RGB"))
  shape = tf.constant(image.shape[:2], tf.int32)
  result = dict(image=args.image, cpu=cpu_kind(), rounds=args.rounds, codecs={})
  runs = {}
  for name in args.codecs.split(","):
    net, quality = load(name)
    payloads = net.compress(tf.constant(image), *quality)
    decoders = {kind: decoder(net, (payloads, shape, *quality), kind) for kind in KERNELS}
    runs[name] = (net, quality, payloads, decoders)
  times = {name: {key: [] for key in ("compress",) + KERNELS} for name in runs}
  for _ in range(args.rounds):  # Interleaved: the load changes between rounds.
    for name, (net, quality, payloads, decoders) in runs.items():
      start = time.perf_counter()
      net.compress(tf.constant(image), *quality)
      times[name]["compress"].append(time.perf_counter() - start)
      for kind, fn in decoders.items():
        start = time.perf_counter()
        fn(payloads, shape, *quality)
        times[name][kind].append(time.perf_counter() - start)
  for name, (net, quality, payloads, decoders) in runs.items():
    decoded = {kind: fn(payloads, shape, *quality).numpy() for kind, fn in decoders.items()}
    diff = np.abs(decoded["transposed"].astype(int) - decoded["polyphase"].astype(int))
    entry = dict(
        quality=int(quality[0]) if quality else None, bytes=int(sum(len(p) for p in payloads.numpy())),
        seconds={k: dict(median=round(float(np.median(v)), 3), min=round(float(min(v)), 3))
                 for k, v in times[name].items()},
        samples_differing=int(np.count_nonzero(diff)), max_difference=int(diff.max()),
        psnr={kind: round(psnr(decoded[kind], image), 4) for kind in KERNELS},
        profile_ms=dict(compress=profile(net.compress, (tf.constant(image), *quality)),
                        **{f"decompress {kind}": profile(fn, (payloads, shape, *quality))
                           for kind, fn in decoders.items()}))
    entry["bfloat16_synthesis"] = bfloat16_synthesis(net, payloads, shape, quality, image)
    result["codecs"][name] = entry
    print(name, json.dumps(entry, indent=1), flush=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=1)


if __name__ == "__main__":
  main()
