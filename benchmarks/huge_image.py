"""Peak memory, time and seam quality of every codec on an 8000x6000 image.

    python benchmarks/huge_image.py [--codecs factorized,factorized-vr,hyperprior,hyperprior-vr,rnn]
        [--height 6000 --width 8000] [--check_tile_size 512] [--rnn_iterations 1]

The image is a mosaic of the 24 Kodak images (each resized to 800x600,
portrait ones rotated first), cycled over a 10x10 grid: real photographic
texture at 48 megapixels (evaluation images, used here only to measure).

Each codec compresses in one child process (real `.tfci` bytes through
`tfc_codecs.load(...).compress`) and decompresses that file in another; each
child reports its own peak resident memory (ru_maxrss, which includes the
TensorFlow runtime and the model) and the seconds of the codec call alone.
The decoder child also reports PSNR of the seam regions (pixels within
`--seam` of a tile boundary, every 1024 pixels) against the rest of the image
and against equally wide control bands through the middle of the tiles.

Models: `channelwise-vr` is the shipped default model (`tfc_codecs.load()`)
and `hyperprior-vr` the shipped hyperprior (`tfc_codecs.load("hyperprior")`),
both variable rate, at their default quality;
`hyperprior` is the fixed-rate codec with that model's transforms and entropy
models (no gains: its reference quality); `factorized-vr` is the shipped
factorized model (variable rate) at its default quality, and `factorized` the
fixed-rate codec with the default architecture and random weights (memory and
time do not depend on the weights; its PSNR is meaningless); `rnn` is the
shipped rnn model (independent 1024-pixel tiles, so its seams are real). rnn
codes 1 iteration by default.

With --check_tile_size T the Ballé codecs also compress and decompress with
T-pixel tiles (after the peak memory was recorded) and report whether the
file and the decoded image are identical to those of the default tile size.

Sizes above the default pixel limit (`images.MAX_PIXELS`, 128 Mi pixels) are
admitted with the codec's `max_pixels` argument. Writes
benchmarks/results/huge_image.json (results of codecs not run are kept).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from common import KODAK, ROOT, write_json

OUT = os.path.join(ROOT, "benchmarks", "results", "huge_image.json")
CODECS = ("factorized", "factorized-vr", "hyperprior", "hyperprior-vr", "channelwise-vr", "rnn")
SHIPPED = {"factorized-vr": "factorized", "hyperprior-vr": "hyperprior",
           "channelwise-vr": "channelwise", "rnn": "rnn"}  # Codec -> shipped model it uses.
CELL = (600, 800)  # Mosaic cell (height, width).


def peak_rss_gib() -> float:
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20, 3)


def make_image(height: int, width: int, path: str) -> None:
  """The Kodak mosaic as a uint8 .npy file."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from PIL import Image  # pylint: disable=import-outside-toplevel
  names = sorted(n for n in os.listdir(KODAK) if n.endswith(".png"))
  if len(names) != 24:
    raise SystemExit(f"expected the 24 Kodak images in {KODAK}")
  cells = []
  for name in names:
    image = Image.open(os.path.join(KODAK, name)).convert("RGB")
    if image.height > image.width:
      image = image.transpose(Image.Transpose.ROTATE_90)
    cells.append(np.asarray(image.resize(CELL[::-1], Image.Resampling.LANCZOS)))
  mosaic = np.lib.format.open_memmap(path, "w+", np.uint8, (height, width, 3))
  index = 0
  for top in range(0, height, CELL[0]):
    for left in range(0, width, CELL[1]):
      cell = cells[index % len(cells)]
      index += 1
      h, w = min(CELL[0], height - top), min(CELL[1], width - left)
      mosaic[top:top + h, left:left + w] = cell[:h, :w]
  mosaic.flush()


# Child processes --------------------------------------------------------------
def build_model(codec_name: str, model_path: str) -> None:
  """Writes the benchmark's model for `codec_name` to `model_path`."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfc_codecs import api, model_dir, registry  # pylint: disable=import-outside-toplevel
  tf.keras.utils.set_random_seed(0)
  cls = registry.codec_class(codec_name)
  if codec_name == "hyperprior":
    source = api.load("hyperprior").net
    net = cls(num_filters=source.config["num_filters"],
              latent_filters=source.config["latent_filters"])
    weights = [w for w in source.trainable_weights if "gain" not in w.name]
    assert [w.shape for w in weights] == [w.shape for w in net.trainable_weights]
    for s, t in zip(weights, net.trainable_weights):
      t.assign(s)
    provenance = {"benchmark": "the shipped model's weights without its gains"}
  else:
    net = cls()
    provenance = {"benchmark": "random weights"}
  model_dir.round_weights(net)
  net.freeze()
  model_dir.save(net, model_path, provenance=provenance)


def load_codec(args, tile_size=None):
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  from tfc_codecs import api, images, model_dir  # pylint: disable=import-outside-toplevel
  if args.codec in SHIPPED:
    path = tfc_codecs.load(SHIPPED[args.codec]).source
  else:
    path = os.path.join(args.workdir, f"{args.codec}_model")
  net, meta = model_dir.load(path)
  if tile_size:
    net.tile_size = tile_size
  codec = api.ImageCodec(net, meta, path,
                         max_pixels=max(images.MAX_PIXELS, args.height * args.width))
  return codec


def seam_psnr(image, decoded, tile: int, seam: int):
  """PSNR (dB) of seam bands (within `seam` pixels of a multiple of `tile`),
  of equally wide control bands through the tile middles, of the rest (not
  seam) and of the whole image."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  height, width = image.shape[:2]

  def bands(size, offset):
    index = np.arange(size)
    distance = np.abs((index - offset + tile // 2) % tile - tile // 2)
    mask = distance < seam
    if offset == 0:
      mask &= index >= seam  # The image border is not a seam.
    return mask

  seam_rows, seam_cols = bands(height, 0), bands(width, 0)
  mid_rows, mid_cols = bands(height, tile // 2), bands(width, tile // 2)
  sums = dict(seam=[0., 0], control=[0., 0], rest=[0., 0], all=[0., 0])
  for top in range(0, height, 256):
    error = np.square(image[top:top + 256].astype(np.float32)
                      - decoded[top:top + 256].astype(np.float32)).sum(axis=2)
    in_seam = seam_rows[top:top + 256, None] | seam_cols[None, :]
    in_control = (mid_rows[top:top + 256, None] | mid_cols[None, :]) & ~in_seam
    for key, mask in (("seam", in_seam), ("control", in_control),
                      ("rest", ~in_seam), ("all", np.ones_like(in_seam))):
      sums[key][0] += float(error[mask].sum())
      sums[key][1] += 3 * int(mask.sum())
  result = {}
  for key, (total, count) in sums.items():
    mse = total / max(count, 1)
    result[f"psnr_{key}_db"] = round(10 * np.log10(255 ** 2 / max(mse, 1e-10)), 3)
    result[f"{key}_samples"] = count
  return result


def child(args):
  import numpy as np  # pylint: disable=import-outside-toplevel
  if args.stage == "build":
    build_model(args.codec, os.path.join(args.workdir, f"{args.codec}_model"))
    return
  image = np.load(os.path.join(args.workdir, "image.npy"), mmap_mode="r")
  codec = load_codec(args)
  data_path = os.path.join(args.workdir, f"{args.codec}.tfci")
  quality = args.rnn_iterations if args.codec == "rnn" else None
  report = dict(loaded_rss_gib=peak_rss_gib())  # TensorFlow, model, nothing coded.
  if args.codec in SHIPPED:  # Others load a temporary random-weights model.
    report["model_dir"] = os.path.relpath(codec.source, ROOT)
  if args.stage == "compress":
    pixels = np.ascontiguousarray(image)
    start = time.monotonic()
    data = codec.compress(pixels, quality) if quality else codec.compress(pixels)
    report.update(seconds=round(time.monotonic() - start, 2), peak_rss_gib=peak_rss_gib(),
                  bytes=len(data), bpp=round(8 * len(data) / image.shape[0] / image.shape[1], 4))
    with open(data_path, "wb") as f:
      f.write(data)
    if args.check_tile_size and args.codec != "rnn":
      other = load_codec(args, args.check_tile_size)
      report[f"identical_file_with_tile_size_{args.check_tile_size}"] = (
          other.compress(pixels) == data)
  else:
    with open(data_path, "rb") as f:
      data = f.read()
    start = time.monotonic()
    decoded = codec.decompress(data)
    report.update(seconds=round(time.monotonic() - start, 2), peak_rss_gib=peak_rss_gib())
    assert decoded.shape == image.shape, decoded.shape
    tile = codec.net.tile_size
    report.update(tile_size=tile, seam_halfwidth=args.seam,
                  **seam_psnr(image, decoded, tile, args.seam))
    if args.check_tile_size and args.codec != "rnn":
      other = load_codec(args, args.check_tile_size)
      differ = int(np.count_nonzero(other.decompress(data) != decoded))
      report[f"decoded_samples_differing_with_tile_size_{args.check_tile_size}"] = differ
  print(json.dumps(report))


# Parent -----------------------------------------------------------------------
def run_child(stage, codec, args, workdir):
  command = [sys.executable, os.path.abspath(__file__), "--stage", stage,
             "--codecs", codec, "--workdir", workdir, "--seam", str(args.seam),
             "--rnn_iterations", str(args.rnn_iterations),
             "--check_tile_size", str(args.check_tile_size or 0),
             "--height", str(args.height), "--width", str(args.width)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  start = time.monotonic()
  result = subprocess.run(command, check=False, capture_output=True, text=True, env=env)
  if result.returncode:
    raise SystemExit(f"{codec} {stage} failed:\n{result.stderr[-3000:]}")
  out = json.loads(result.stdout.strip().splitlines()[-1]) if stage != "build" else {}
  print(f"{codec} {stage}: {out} ({time.monotonic() - start:.0f} s with start-up)", flush=True)
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--codecs", default=",".join(CODECS))
  parser.add_argument("--height", type=int, default=6000)
  parser.add_argument("--width", type=int, default=8000)
  parser.add_argument("--seam", type=int, default=16,
                      help="half-width in pixels of the seam and control bands")
  parser.add_argument("--rnn_iterations", type=int, default=1)
  parser.add_argument("--check_tile_size", type=int, default=0)
  parser.add_argument("--workdir", help="scratch directory (default: a temporary one)")
  parser.add_argument("--output", default=OUT)
  parser.add_argument("--stage", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.stage:
    args.codec = args.codecs
    return child(args)
  codecs = args.codecs.split(",")
  if any(c not in CODECS for c in codecs):
    raise SystemExit(f"--codecs: choose from {CODECS}")
  with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
    make_image(args.height, args.width, os.path.join(workdir, "image.npy"))
    for codec in codecs:
      if codec not in SHIPPED:
        run_child("build", codec, args, workdir)
      entry = dict(command=" ".join(["python", "benchmarks/huge_image.py"] + sys.argv[1:]),
                   model={"hyperprior-vr": "shipped hyperprior model (hyperprior/vr), default quality",
                          "hyperprior": "fixed-rate codec, shipped hyperprior/vr weights without gains",
                          "factorized-vr": "shipped factorized model (factorized/vr), default quality",
                          "channelwise-vr": "shipped default model (channelwise/vr), default quality",
                          "rnn": "shipped rnn model",
                          }.get(codec, "random weights, default architecture"))
      if codec == "rnn":
        entry["iterations"] = args.rnn_iterations
      for stage in ("compress", "decompress"):
        entry[stage] = run_child(stage, codec, args, workdir)
      report = {}
      if os.path.exists(args.output):  # Keep the other codecs' results.
        with open(args.output) as f:
          report = json.load(f)
      report.update(image=f"{args.width}x{args.height} Kodak mosaic (800x600 cells)",
                    peak_rss_bound_gib=6)
      report.setdefault("codecs", {})[codec] = entry
      write_json(args.output, report)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main()
