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

from tfc_codecs import container, fileio, images
from tfc_codecs.contract import LoadedCodec, RateKind, cut_progressive
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


def learned_points(model: Optional[str], qualities: Optional[Sequence[int]],
                   max_pixels: int = images.MAX_PIXELS):
  """(name, description, points) of a shipped model family, a model dir or an
  export (`contract.LoadedCodec`), refusing images over `max_pixels`.

  Qualities select shipped models, or are inputs of a model that takes one
  (for rnn, iterations).
  """
  from tfc_codecs import api, zoo  # pylint: disable=import-outside-toplevel
  label = model or zoo.DEFAULT_MODEL
  first = api.load(model, qualities[0] if qualities else None, max_pixels=max_pixels)
  if first.rate_kind.takes_quality:
    points = [RatePoint(f"{first.fingerprint.hex()}-q{k}", k,
                        lambda k=k: Coder(lambda image, k=k: first.compress(image, k),
                                          first.decompress))
              for k in qualities or range(1, first.num_qualities + 1)]
  elif label in zoo.family_names():
    if qualities:
      paths = [(q, zoo.resolve(model, q)) for q in qualities]
    else:
      paths = [(e["quality"], e["path"]) for e in zoo.shipped_models() if e["name"] == label]
    points = [RatePoint(zoo.read_fingerprint(path), quality,
                        lambda path=path: _coder(api.load(path, max_pixels=max_pixels)))
              for quality, path in paths]
  else:
    if qualities and list(qualities) != [first.quality]:
      raise CodecError(f"{label} is a single-rate model: --qualities selects the models "
                       "of a shipped family or the qualities of a variable-rate model")
    points = [RatePoint(first.fingerprint.hex(), first.default_quality,
                        lambda: _coder(first))]
  return learned_name(model), f"tfc_codecs {label}, real .tfci files", points


def _coder(codec: LoadedCodec) -> Coder:
  return Coder(codec.compress, codec.decompress)


def learned_name(model: Optional[str]) -> str:
  """The results name of a shipped model family or model directory."""
  from tfc_codecs import zoo  # pylint: disable=import-outside-toplevel
  return f"tfc_codecs-{os.path.basename(os.path.normpath(model or zoo.DEFAULT_MODEL))}"


def evaluate_learned(model: Optional[str], qualities: Optional[Sequence[int]],
                     files: Sequence[str], output: str, per_image: bool = False,
                     progress: bool = True, max_pixels: int = images.MAX_PIXELS) -> Dict:
  """Evaluates a shipped model family, model directory or export at its
  qualities."""
  from tfc_codecs import api  # pylint: disable=import-outside-toplevel
  name, description, points = learned_points(model, qualities, max_pixels)
  codec = api.load(model, qualities[0] if qualities else None, max_pixels=max_pixels)
  if codec.rate_kind is RateKind.PROGRESSIVE:
    return evaluate_progressive(name, description, codec, files, output, qualities,
                                per_image, progress)
  return evaluate(name, description, points, files, output, per_image, progress,
                  max_pixels)


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


def _quality(image: np.ndarray, decoded: np.ndarray, path: str) -> Dict[str, float]:
  """bpp of the file at `path`, and the distortion of its decoded image."""
  if decoded.shape != image.shape:
    raise CodecError(f"decoded shape {decoded.shape} != {image.shape}")
  ms_ssim = metrics.ms_ssim(image, decoded)
  return {"bpp": metrics.bits_per_pixel(os.path.getsize(path), *image.shape[:2]),
          "psnr-rgb": metrics.psnr(image, decoded), "ms-ssim-rgb": ms_ssim,
          "ms-ssim-rgb-db": metrics.ms_ssim_db(ms_ssim)}


def _measure(coder: Coder, image: np.ndarray, workdir: str) -> Dict[str, float]:
  path = os.path.join(workdir, "bitstream")
  start = time.perf_counter()
  fileio.atomic_write(path, coder.encode(image), overwrite=True)
  encoding_time = time.perf_counter() - start
  start = time.perf_counter()
  decoded = coder.decode(images.read_bytes(path))
  decoding_time = time.perf_counter() - start
  return dict(_quality(image, decoded, path), encoding_time=encoding_time,
              decoding_time=decoding_time)


def _read_partial(partial: str) -> Dict[tuple, Dict]:
  """Finished (point, image) rows of an interrupted run."""
  done = {}
  if os.path.exists(partial):
    with open(partial) as f:
      for line in f:
        try:
          row = json.loads(line)
        except ValueError:
          continue  # A line cut short by an interruption.
        done[(row["point"], row["image"])] = row
  return done


def _report(name: str, description: str, qualities: Sequence[int], rows_by_point,
            files: Sequence[str], output: str, per_image: bool) -> Dict:
  """Averages rows per point into CompressAI's schema; writes `output`."""
  results = {m: [float(np.mean([r[m] for r in rows])) for rows in rows_by_point]
             for m in METRICS}
  results["quality"] = list(qualities)
  report = dict(name=name, description=f"{description}; {len(files)} images from "
                f"{os.path.dirname(os.path.abspath(files[0]))}", results=results)
  if per_image:
    report["per_image"] = [r for rows in rows_by_point for r in rows]
  fileio.atomic_write(output, (json.dumps(report, indent=2) + "\n").encode(),
                      overwrite=True)
  os.remove(output + ".partial.jsonl")
  return report


def evaluate(name: str, description: str, points: Sequence[RatePoint],
             files: Sequence[str], output: str, per_image: bool = False,
             progress: bool = True, max_pixels: int = images.MAX_PIXELS) -> Dict:
  """Runs all points on all files (images over `max_pixels` are refused);
  writes and returns the results dict."""
  partial = output + ".partial.jsonl"
  done = _read_partial(partial)
  bar = tqdm.tqdm(total=len(points) * len(files), disable=not progress,
                  desc=name, unit="image")
  rows_by_point = []
  with tempfile.TemporaryDirectory() as workdir, open(partial, "a") as log:
    for point in points:
      rows, coder = [], None
      for path in files:
        key = (point.key, os.path.basename(path))
        if key not in done:
          image, _ = images.read_image(path, max_pixels)
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
  return _report(name, description, [p.quality for p in points], rows_by_point,
                 files, output, per_image)


def evaluate_progressive(name: str, description: str, codec: LoadedCodec, files: Sequence[str],
                         output: str, qualities: Optional[Sequence[int]] = None,
                         per_image: bool = False, progress: bool = True) -> Dict:
  """`evaluate` for a progressive codec (rnn), in one encode and one decode
  per image: the file cut after K payloads (header re-serialized with count
  and quality K) is byte for byte the K-iteration file, and
  `decompress_steps` gives every K's decoded image; one K per image is also
  decoded from its cut file on disk and must match. encoding_time and
  decoding_time are those of the top-quality file, for every K."""
  qualities = list(qualities or range(1, codec.num_qualities + 1))
  keys = [f"{codec.fingerprint.hex()}-q{k}" for k in qualities]
  partial = output + ".partial.jsonl"
  done = _read_partial(partial)
  bar = tqdm.tqdm(total=len(files), disable=not progress, desc=name, unit="image")
  with tempfile.TemporaryDirectory() as workdir, open(partial, "a") as log:
    path = os.path.join(workdir, "bitstream")
    for index, image_path in enumerate(files):
      image_name = os.path.basename(image_path)
      if all((key, image_name) in done for key in keys):
        bar.update(1)
        continue
      image, _ = images.read_image(image_path, codec.max_pixels)
      if index == 0:  # Warm-up (tracing is not timed), on a corner: tracing is size-independent.
        codec.decompress_steps(codec.compress(image[:64, :64], max(qualities)))
      start = time.perf_counter()
      full = codec.compress(image, max(qualities))
      encoding_time = time.perf_counter() - start
      start = time.perf_counter()
      steps = codec.decompress_steps(full)
      decoding_time = time.perf_counter() - start
      stream = container.parse(full, codec.max_pixels)
      checked = qualities[index % len(qualities)]
      for key, quality in zip(keys, qualities):
        fileio.atomic_write(path, container.serialize(cut_progressive(stream, quality)),
                            overwrite=True)
        if quality == checked and not np.array_equal(
            codec.decompress(images.read_bytes(path)), steps[quality - 1]):
          raise CodecError(f"{image_name}: the {quality}-iteration file decodes "
                           "differently from decompress_steps")
        row = dict(point=key, image=image_name, quality=quality,
                   **_quality(image, steps[quality - 1], path),
                   encoding_time=encoding_time, decoding_time=decoding_time)
        log.write(json.dumps(row) + "\n")
        log.flush()
        done[(key, image_name)] = row
      bar.update(1)
  bar.close()
  rows_by_point = [[done[(key, os.path.basename(f))] for f in files] for key in keys]
  return _report(name, description, qualities, rows_by_point, files, output, per_image)
