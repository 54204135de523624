"""CPU speed side by side: this checkout, its previous version and CompressAI.

    python benchmarks/speed.py [--previous /work/main] [--compressai ../peer-cai]
                               [--rounds 2]

Same machine, same run, same 768x512 image (kodim01):
  * steady state (median of 7 calls after 2 warm-ups, per process; processes
    of the three implementations alternate for --rounds rounds and the runs
    are pooled): the shipped hyperprior at its default quality, a factorized
    model (N=128, M=192, random weights, like CompressAI's bmshj2018 q3) and an
    rnn (width 0.25, random weights) at 1 and at its default iterations;
    CompressAI's bmshj2018 hyperprior/factorized q3 (random weights) through
    its recipe's `bench_cai.py`, if its venv exists;
  * the command line, process start to file written: `tfc_codecs compress
    kodim01.png` and `decompress`, cold (empty function cache) and warm;
  * a folder of the 24 Kodak images in one call, images/s;
  * peak resident memory (ru_maxrss) of each process.
Both versions run the same model files (the shipped hyperprior of this
checkout is passed by path, `--model`); the script checks that they write
identical files and compares their decoded images. The previous version is
another checkout of this repository (`--previous`), run with its own code.
Writes benchmarks/results/speed.{json,md}.
"""

import argparse
import glob
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import KODAK, ROOT, write_json

# This checkout's shipped models: both versions run them, so that they code
# with the same weights (the zoo module imports no TensorFlow).
from tfc_codecs import zoo  # pylint: disable=wrong-import-position

IMAGE = "kodim01.png"
WARMUP, REPS = 2, 7
RNN_WIDTH = 0.25
RNN_DEFAULT_ITERATIONS = 8  # RnnCodec's default quality.

# Runs in a child process under either version's code: only the public API.
CHILD = r'''
import hashlib, json, os, resource, statistics, sys, time
import numpy as np
import tfc_codecs
from tfc_codecs import images
model, image_path, qualities, out, warmup, reps = sys.argv[1:7]
codec = tfc_codecs.load(model)
image, _ = images.read_image(image_path)
result = {}
for quality in [int(q) for q in qualities.split(",")] if qualities else [None]:
  kwargs = {} if quality is None else {"quality": quality}
  def timed(fn):
    for _ in range(int(warmup)):
      value = fn()
    runs = []
    for _ in range(int(reps)):
      start = time.perf_counter()
      value = fn()
      runs.append(time.perf_counter() - start)
    return value, runs
  data, compress_runs = timed(lambda: codec.compress(image, **kwargs))
  decoded, decompress_runs = timed(lambda: codec.decompress(data))
  np.save(os.path.join(out, f"decoded-{quality}.npy"), decoded)
  result[str(quality)] = dict(
      compress_runs=compress_runs, decompress_runs=decompress_runs, bytes=len(data),
      file_sha256=hashlib.sha256(data).hexdigest())
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result["package"] = os.path.dirname(tfc_codecs.__file__)
print("RESULT " + json.dumps(result))
'''

MAKE_MODELS = r'''
import sys
import tfc_codecs
from tfc_codecs import model_dir, registry
for name, config, path in [("factorized", dict(num_filters=128, latent_filters=192), sys.argv[1]),
                           ("rnn", dict(width=%r), sys.argv[2])]:
  net = registry.codec_class(name)(**config)
  model_dir.round_weights(net)
  net.freeze()
  model_dir.save(net, path, provenance={"note": "random weights, for speed only"})
''' % RNN_WIDTH


def _env(root, cache):
  env = {k: v for k, v in os.environ.items() if k not in ("TF2_BEHAVIOR", "PYTHONPATH")}
  env.update(PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3", TFC_CODECS_CACHE=cache)
  return env


def _run(argv, env):
  """Runs a process in a scratch directory (so that `python -c` does not put
  this checkout first on sys.path); returns (stdout, wall seconds, its peak
  RSS in MB)."""
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    if process.returncode:
      raise RuntimeError(f"{argv} failed:\n{err.read()}")
    return out.read(), wall, usage.ru_maxrss / 1024


def _result_line(stdout):
  return json.loads([l for l in stdout.splitlines() if l.startswith("RESULT ")][-1][7:])


def _median(values):
  return float(statistics.median(values))


def steady_state(versions, cache, rounds, image, models, work):
  """Per model: pooled compress/decompress runs of each version."""
  results = {}
  for name, (model, qualities, warmup, reps) in models.items():
    pooled = {}
    for _ in range(rounds):
      for version, root in versions.items():
        out = os.path.join(work, f"{name}-{version}")
        os.makedirs(out, exist_ok=True)
        stdout, _, _ = _run([sys.executable, "-c", CHILD, model, image, qualities, out,
                             str(warmup), str(reps)], _env(root, cache))
        result = _result_line(stdout)
        entry = pooled.setdefault(version, {"peak_rss_mb": 0})
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], result.pop("peak_rss_mb"))
        package = result.pop("package")
        assert package.startswith(root), (package, root)  # The version's own code.
        for quality, runs in result.items():
          point = entry.setdefault(quality, dict(compress_runs=[], decompress_runs=[]))
          point["compress_runs"] += runs["compress_runs"]
          point["decompress_runs"] += runs["decompress_runs"]
          point.update(bytes=runs["bytes"], file_sha256=runs["file_sha256"])
    for version, entry in pooled.items():
      for quality, point in entry.items():
        if quality != "peak_rss_mb":
          point["compress_s"] = _median(point["compress_runs"])
          point["decompress_s"] = _median(point["decompress_runs"])
    results[name] = pooled
    _compare_decoded(name, pooled, work)
    print(name, json.dumps({v: {q: (p["compress_s"], p["decompress_s"]) for q, p in e.items()
                                if q != "peak_rss_mb"} for v, e in pooled.items()}), flush=True)
  return results


def _compare_decoded(name, pooled, work):
  """Records, per quality, whether the versions' files are identical and how
  their decoded images differ (samples, PSNR against the original)."""
  original = _read_rgb(os.path.join(KODAK, IMAGE)).astype(np.float64)
  psnr = lambda x: float(10 * np.log10(255 ** 2 / np.mean((x.astype(np.float64) - original) ** 2)))
  for quality, point in pooled["new"].items():
    if quality == "peak_rss_mb":
      continue
    old, new = pooled["previous"][quality], point
    decoded = {v: np.load(os.path.join(work, f"{name}-{v}", f"decoded-{quality}.npy"))
               for v in ("previous", "new")}
    new["same_file_as_previous"] = old["file_sha256"] == new["file_sha256"]
    new["decoded_samples_differing"] = int(np.count_nonzero(decoded["previous"] != decoded["new"]))
    new["psnr_db"], old["psnr_db"] = psnr(decoded["new"]), psnr(decoded["previous"])


def _read_rgb(path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"))


def compressai(peer, rounds, image):
  """CompressAI's bench_cai.py results (pooled runs), or {} without its venv."""
  python = os.path.join(peer, "venv", "bin", "python")
  if not os.path.exists(python):
    return {}
  results = {}
  for model in ("hyperprior", "factorized"):
    runs = dict(compress_runs=[], decompress_runs=[])
    for _ in range(rounds):
      stdout, _, _ = _run([python, os.path.join(peer, "bench_cai.py"), model, "3",
                        "--image", image], dict(os.environ))
      result = _result_line(stdout)
      runs["compress_runs"] += result["runs_compress"]
      runs["decompress_runs"] += result["runs_decompress"]
      runs["peak_rss_mb"] = max(runs.get("peak_rss_mb", 0), result["peak_rss_mb"])
      runs["versions"] = dict(torch=result["torch"], compressai=result["compressai"],
                              N=result["N"], M=result["M"], threads=result["threads"])
    runs["compress_s"] = _median(runs["compress_runs"])
    runs["decompress_s"] = _median(runs["decompress_runs"])
    results[model] = runs
    print("compressai", model, runs["compress_s"], runs["decompress_s"], flush=True)
  return results


def command_line(versions, rounds, image, work):
  """Wall seconds of `tfc_codecs compress IMAGE` and `decompress`, process
  start to file written: cold (empty cache) once, then warm, alternating."""
  results = {}
  caches = {v: os.path.join(work, f"cli-cache-{v}") for v in versions}  # Start empty.
  for phase in ["cold"] + ["warm"] * rounds:
    for version, root in versions.items():
      folder = os.path.join(work, f"cli-{version}")
      os.makedirs(folder, exist_ok=True)
      cli = [sys.executable, os.path.join(root, "bin", "tfc_codecs")]
      env = _env(root, caches[version])
      tfci = os.path.join(folder, "out.tfci")
      model = ["--model", zoo.resolve("hyperprior")]
      for step, argv in [("compress", ["compress", image, "--output", tfci, *model]),
                         ("decompress", ["decompress", tfci, "--output", tfci + ".png",
                                         *model])]:
        _, wall, rss = _run(cli + argv + ["--overwrite"], env)
        entry = results.setdefault(version, {})
        entry.setdefault(f"{step}_{phase}_runs", []).append(wall)
        entry[f"{step}_peak_rss_mb"] = max(entry.get(f"{step}_peak_rss_mb", 0), rss)
  for entry in results.values():
    for key in [k for k in entry if k.endswith("_runs")]:
      entry[key[:-len("_runs")] + "_s"] = _median(entry[key])
  print("cli", json.dumps({v: {k: e[k] for k in e if k.endswith("_s")} for v, e in results.items()}),
        flush=True)
  return results


def folder(versions, work):
  """One `tfc_codecs compress` call on the 24 Kodak images (warm cache):
  wall seconds and images/s; the versions must write identical files."""
  files = sorted(glob.glob(os.path.join(KODAK, "*.png")))
  results, written = {}, {}
  runs = [("previous", []), ("new", ["--workers", "1"]), ("new", [])]
  for version, flags in runs:
    root = versions[version]
    out = os.path.join(work, f"folder-{version}{'-'.join([''] + flags)}")
    os.makedirs(out, exist_ok=True)
    env = _env(root, os.path.join(work, f"cli-cache-{version}"))
    _, wall, rss = _run([sys.executable, os.path.join(root, "bin", "tfc_codecs"), "compress",
                         *files, "--output", out, "--overwrite",
                         "--model", zoo.resolve("hyperprior"), *flags], env)
    label = version + (" --workers 1" if flags else "")
    results[label] = dict(wall_s=wall, images=len(files), images_per_s=len(files) / wall,
                          peak_rss_mb=rss)
    written[label] = {name: hashlib.sha256(open(os.path.join(out, name), "rb").read()).hexdigest()
                      for name in sorted(os.listdir(out))}
  results["identical_files"] = len({json.dumps(w, sort_keys=True) for w in written.values()}) == 1
  print("folder", json.dumps(results), flush=True)
  return results


def _table(report):
  """The Markdown summary of a report."""
  steady, cai = report["steady_state"], report["compressai"]
  lines = [f"Machine: {report['machine']}. {report['condition']} Versions: "
           f"new = {report['commits']['new']}, previous = {report['commits']['previous']}.", "",
           "| model | implementation | compress s | decompress s | speed-up vs CompressAI (c / d) | "
           "speed-up vs previous (c / d) | peak RSS MB | same file as previous | decoded samples differing | PSNR dB |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for name, cai_name in (("hyperprior", "hyperprior"), ("factorized", "factorized")):
    entries = steady[name]
    quality = next(q for q in entries["new"] if q != "peak_rss_mb")
    new, old = entries["new"][quality], entries["previous"][quality]
    ref = cai.get(cai_name)
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "–"
    for label, point, rss in (("tfc_codecs (new)", new, entries["new"]["peak_rss_mb"]),
                              ("tfc_codecs (previous)", old, entries["previous"]["peak_rss_mb"])):
      versus_cai = (f"{ratio(ref['compress_s'], point['compress_s'])} / "
                    f"{ratio(ref['decompress_s'], point['decompress_s'])}") if ref else "–"
      versus_old = (f"{ratio(old['compress_s'], point['compress_s'])} / "
                    f"{ratio(old['decompress_s'], point['decompress_s'])}")
      same = "yes" if point is old else ("yes" if new["same_file_as_previous"] else "NO")
      differing = 0 if point is old else new["decoded_samples_differing"]
      lines.append(f"| {name} | {label} | {point['compress_s']:.3f} | {point['decompress_s']:.3f} | "
                   f"{versus_cai} | {versus_old} | {rss:.0f} | {same} | {differing} | "
                   f"{point['psnr_db']:.4f} |")
    if ref:
      lines.append(f"| {name} | CompressAI {ref['versions']['compressai']} (torch "
                   f"{ref['versions']['torch']}, N={ref['versions']['N']}, M={ref['versions']['M']}) | "
                   f"{ref['compress_s']:.3f} | {ref['decompress_s']:.3f} | 1.00x / 1.00x | – | "
                   f"{ref['peak_rss_mb']:.0f} | – | – | – |")
  rnn = steady["rnn"]
  lines += ["", "rnn (width 0.25, random weights), seconds:", "",
            "| implementation | iterations | compress s | decompress s | compress s/iteration | decompress s/iteration |",
            "|---|---|---|---|---|---|"]
  for version in ("new", "previous"):
    points = {int(q): p for q, p in rnn[version].items() if q != "peak_rss_mb"}
    first, last = min(points), max(points)
    per = lambda key: (points[last][key] - points[first][key]) / (last - first)
    for q in sorted(points):
      lines.append(f"| {version} | {q} | {points[q]['compress_s']:.3f} | {points[q]['decompress_s']:.3f} | "
                   f"{per('compress_s'):.3f} | {per('decompress_s'):.3f} |")
  cli = report["command_line"]
  lines += ["", f"Command line, process start to file written ({IMAGE}), seconds (median):", "",
            "| version | compress cold | compress warm | decompress cold | decompress warm | "
            "peak RSS MB (compress / decompress) |",
            "|---|---|---|---|---|---|"]
  for version in ("new", "previous"):
    c = cli[version]
    lines.append(f"| {version} | {c['compress_cold_s']:.2f} | {c['compress_warm_s']:.2f} | "
                 f"{c['decompress_cold_s']:.2f} | {c['decompress_warm_s']:.2f} | "
                 f"{c['compress_peak_rss_mb']:.0f} / {c['decompress_peak_rss_mb']:.0f} |")
  batch = report["folder"]
  lines += ["", "24 Kodak images in one `tfc_codecs compress` call (warm):", "",
            "| version | wall s | images/s | peak RSS MB |", "|---|---|---|---|"]
  for label, row in batch.items():
    if isinstance(row, dict):
      lines.append(f"| {label} | {row['wall_s']:.1f} | {row['images_per_s']:.2f} | "
                   f"{row['peak_rss_mb']:.0f} |")
  lines.append(f"\nIdentical files from every version: {'yes' if batch['identical_files'] else 'NO'}.")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--previous", default="/work/main",
                      help="Checkout of the previous version of this repository.")
  parser.add_argument("--compressai", default=os.path.join(ROOT, "..", "peer-cai"),
                      help="Folder of the CompressAI recipe with its venv/.")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--condition", default="",
                      help="What else ran on the machine, for the record.")
  args = parser.parse_args()
  versions = {"previous": os.path.abspath(args.previous), "new": ROOT}
  image = os.path.abspath(os.path.join(KODAK, IMAGE))
  work = tempfile.mkdtemp(prefix="tfc_codecs-speed-")
  try:
    cache = os.path.join(work, "cache")
    models = {name: os.path.join(work, name) for name in ("factorized", "rnn")}
    _run([sys.executable, "-c", MAKE_MODELS, models["factorized"], models["rnn"]],
         _env(ROOT, cache))
    rnn_iterations = f"1,{RNN_DEFAULT_ITERATIONS}"
    report = dict(
        machine=f"{os.cpu_count()} CPU cores", image=f"{IMAGE} (768x512)",
        condition=args.condition, warmup=WARMUP, reps=REPS, rounds=args.rounds,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        commits={version: subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True).stdout.strip()
                 for version, root in versions.items()})
    report["compressai"] = compressai(args.compressai, args.rounds, image)
    report["steady_state"] = steady_state(versions, cache, args.rounds, image, {
        "hyperprior": (zoo.resolve("hyperprior"), "", WARMUP, REPS),
        "factorized": (models["factorized"], "", WARMUP, REPS),
        "rnn": (models["rnn"], rnn_iterations, 1, 3)}, work)
    report["command_line"] = command_line(versions, args.rounds + 1, image, work)
    report["folder"] = folder(versions, work)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  out_dir = os.path.join(ROOT, "benchmarks", "results")
  write_json(os.path.join(out_dir, "speed.json"), report)
  table = _table(report)
  with open(os.path.join(out_dir, "speed.md"), "w") as f:
    f.write(table)
  print(table)


if __name__ == "__main__":
  main()
