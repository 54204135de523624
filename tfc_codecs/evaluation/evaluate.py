"""Rate–distortion evaluation over a folder of images, resumable.

Every point runs the real path: encode -> file on disk -> read -> decode; bpp
is the file size × 8 / pixels. Results use CompressAI's schema (one entry per
rate point in each list). Finished (point, image) rows are appended to
`OUTPUT.partial.jsonl` as they complete, so an interrupted run resumes where
it stopped.
"""

import dataclasses
import json
import os
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tqdm

from tfc_codecs import fileio, images
from tfc_codecs.errors import CodecError
from tfc_codecs.evaluation import classical, metrics

METRICS = ("bpp", "psnr-rgb", "ms-ssim-rgb", "ms-ssim-rgb-db",
           "encoding_time", "decoding_time")


@dataclasses.dataclass
class RatePoint:
  """One rate point of a codec: a key that identifies it, and its coder."""
  key: str
  quality: int
  make_coder: Callable[[], "Coder"]


@dataclasses.dataclass
class Coder:
  encode: Callable[[np.ndarray], bytes]
  decode: Callable[[bytes], np.ndarray]


def learned_points(model: Optional[str], qualities: Optional[Sequence[int]]):
  """(name, description, points) of a shipped model family or a model dir.

  Qualities select shipped models, or are inputs of a variable-rate model
  (for rnn, iterations).
  """
  from tfc_codecs import api, zoo  # pylint: disable=import-outside-toplevel
  label = model or zoo.DEFAULT_MODEL
  first = api.load(model, qualities[0] if qualities else None)
  if first.num_qualities:
    iterations = qualities or range(1, first.num_qualities + 1)
    points = [RatePoint(f"{first.meta['fingerprint']}-q{k}", k,
                        lambda k=k: Coder(lambda image, k=k: first.compress(image, k),
                                          first.decompress))
              for k in iterations]
  else:
    if qualities:
      paths = [(q, zoo.resolve(model, q)) for q in qualities]
    elif label in zoo.family_names():
      paths = [(e["quality"], e["path"]) for e in zoo.shipped_models()
               if e["name"] == label]
    else:
      paths = [(0, zoo.resolve(model))]

    def make_coder(path):
      codec = api.load(path)
      return Coder(codec.compress, codec.decompress)

    points = [RatePoint(zoo.read_fingerprint(path), quality,
                        lambda path=path: make_coder(path))
              for quality, path in paths]
  name = f"tfc_codecs-{os.path.basename(os.path.normpath(label))}"
  return name, f"tfc_codecs {label}, real .tfci files", points


def classical_points(name: str, qualities: Optional[Sequence[int]]):
  """(name, description, points) of a Pillow codec over its quality sweep."""
  points = [RatePoint(f"{name}-q{q}", q,
                      lambda q=q: Coder(classical.encoder(name, q), classical.decode))
            for q in (qualities or classical.QUALITIES[name])]
  return f"pillow-{name}", f"{name} through Pillow (real files)", points


def list_images(folder: str) -> List[str]:
  """The readable images of an evaluation folder."""
  if not os.path.isdir(folder):
    raise CodecError(f"--data {folder} is not a directory")
  return images.list_images(folder)


def _measure(coder: Coder, image: np.ndarray, workdir: str) -> Dict[str, float]:
  path = os.path.join(workdir, "bitstream")
  start = time.perf_counter()
  fileio.atomic_write(path, coder.encode(image), overwrite=True)
  encoding_time = time.perf_counter() - start
  start = time.perf_counter()
  decoded = coder.decode(images.read_bytes(path))
  decoding_time = time.perf_counter() - start
  if decoded.shape != image.shape:
    raise CodecError(f"decoded shape {decoded.shape} != {image.shape}")
  ms_ssim = metrics.ms_ssim(image, decoded)
  return {"bpp": metrics.bits_per_pixel(os.path.getsize(path), *image.shape[:2]),
          "psnr-rgb": metrics.psnr(image, decoded), "ms-ssim-rgb": ms_ssim,
          "ms-ssim-rgb-db": metrics.ms_ssim_db(ms_ssim),
          "encoding_time": encoding_time, "decoding_time": decoding_time}


def evaluate(name: str, description: str, points: Sequence[RatePoint],
             files: Sequence[str], output: str, per_image: bool = False,
             progress: bool = True) -> Dict:
  """Runs all points on all files; writes and returns the results dict."""
  partial = output + ".partial.jsonl"
  done = {}
  if os.path.exists(partial):
    with open(partial) as f:
      for line in f:
        try:
          row = json.loads(line)
        except ValueError:
          continue  # A line cut short by an interruption.
        done[(row["point"], row["image"])] = row
  bar = tqdm.tqdm(total=len(points) * len(files), disable=not progress,
                  desc=name, unit="image")
  rows_by_point = []
  with tempfile.TemporaryDirectory() as workdir, open(partial, "a") as log:
    for point in points:
      rows, coder = [], None
      for path in files:
        key = (point.key, os.path.basename(path))
        if key not in done:
          image, _ = images.read_image(path)
          if coder is None:
            coder = point.make_coder()
            _measure(coder, image, workdir)  # Warm-up: tracing is not timed.
          row = dict(point=point.key, image=key[1], quality=point.quality,
                     **_measure(coder, image, workdir))
          log.write(json.dumps(row) + "\n")
          log.flush()
          done[key] = row
        rows.append(done[key])
        bar.update(1)
      rows_by_point.append(rows)
  bar.close()
  results = {m: [float(np.mean([r[m] for r in rows])) for rows in rows_by_point]
             for m in METRICS}
  results["quality"] = [p.quality for p in points]
  report = dict(name=name, description=f"{description}; {len(files)} images from "
                f"{os.path.dirname(os.path.abspath(files[0]))}", results=results)
  if per_image:
    report["per_image"] = [r for rows in rows_by_point for r in rows]
  fileio.atomic_write(output, (json.dumps(report, indent=2) + "\n").encode(),
                      overwrite=True)
  os.remove(partial)
  return report
