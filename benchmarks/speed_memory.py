"""Encode/decode speed and peak memory of the shipped codecs and Pillow's.

    python benchmarks/speed_memory.py [--data ../shared/data/kodak]

Each codec runs in its own subprocess (so its peak resident memory, ru_maxrss,
is its own): the 24 Kodak images (median seconds per image after one warm-up,
megapixels/s) and one large 4000x3000 image made by resizing kodim01 with
Lanczos. Writes benchmarks/results/speed_memory.{json,md}. Run it on an idle
machine: other load skews the timings.
"""

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from common import KODAK, ROOT, write_json

LARGE = (3000, 4000)  # height, width
CLASSICAL_QUALITY = 75


def _coder(name):
  from tfc_codecs.evaluation import classical  # pylint: disable=import-outside-toplevel
  if name in classical.QUALITIES:
    return classical.encoder(name, CLASSICAL_QUALITY), classical.decode
  from tfc_codecs import api  # pylint: disable=import-outside-toplevel
  codec = api.load(name)
  return codec.compress, codec.decompress


def measure_one(name, data_dir):
  """Runs in the child: timings for one codec, printed as JSON."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  encode, decode = _coder(name)
  files = sorted(glob.glob(os.path.join(data_dir, "*.png")))
  kodak = [images.read_image(f)[0] for f in files]
  encode(kodak[0]), decode(encode(kodak[0]))  # Warm-up (tracing).
  enc, dec = [], []
  for image in kodak:
    start = time.perf_counter()
    data = encode(image)
    enc.append(time.perf_counter() - start)
    start = time.perf_counter()
    decode(data)
    dec.append(time.perf_counter() - start)
  kodak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  large = np.asarray(Image.fromarray(kodak[0]).resize(LARGE[::-1], Image.LANCZOS))
  start = time.perf_counter()
  data = encode(large)
  large_enc = time.perf_counter() - start
  start = time.perf_counter()
  decode(data)
  large_dec = time.perf_counter() - start
  mp = kodak[0].shape[0] * kodak[0].shape[1] / 1e6
  print(json.dumps(dict(
      codec=name, kodak_encode_s=float(np.median(enc)), kodak_decode_s=float(np.median(dec)),
      kodak_encode_mps=mp / float(np.median(enc)), kodak_decode_mps=mp / float(np.median(dec)),
      kodak_peak_rss_mb=kodak_rss,
      large_encode_s=large_enc, large_decode_s=large_dec,
      large_encode_mps=LARGE[0] * LARGE[1] / 1e6 / large_enc,
      large_decode_mps=LARGE[0] * LARGE[1] / 1e6 / large_dec,
      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", default=KODAK)
  parser.add_argument("--one", help=argparse.SUPPRESS)
  parser.add_argument("--codecs", nargs="*", default=None)
  args = parser.parse_args()
  if args.one:
    measure_one(args.one, args.data)
    return
  from tfc_codecs import zoo  # pylint: disable=import-outside-toplevel
  codecs = args.codecs or zoo.family_names() + ["jpeg-420", "webp"]
  rows = []
  for name in codecs:
    out = subprocess.run([sys.executable, __file__, "--one", name, "--data", args.data],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(rows[-1], flush=True)
  out_dir = os.path.join(ROOT, "benchmarks", "results")
  write_json(os.path.join(out_dir, "speed_memory.json"),
             dict(machine=f"{os.cpu_count()} CPU cores", large_image=f"{LARGE[1]}x{LARGE[0]}",
                  rows=rows))
  table = ["| codec | Kodak encode s | decode s | encode MP/s | decode MP/s | "
           f"{LARGE[1]}x{LARGE[0]} encode s | decode s | peak RSS MB (Kodak) | peak RSS MB (large) |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    table.append(f"| {r['codec']} | {r['kodak_encode_s']:.3f} | {r['kodak_decode_s']:.3f} | "
                 f"{r['kodak_encode_mps']:.2f} | {r['kodak_decode_mps']:.2f} | "
                 f"{r['large_encode_s']:.2f} | {r['large_decode_s']:.2f} | "
                 f"{r['kodak_peak_rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
  with open(os.path.join(out_dir, "speed_memory.md"), "w") as f:
    f.write("\n".join(table) + "\n")
  print("\n".join(table))


if __name__ == "__main__":
  main()
