"""CPU speed side by side: this checkout, its previous version and CompressAI.

    python benchmarks/speed.py [--previous CHECKOUT | --previous_commit 4ee8d89]
                               [--compressai ../peer-cai] [--rounds 2]

Same machine, same run, same 768x512 image (kodim01):
  * steady state (median of 7 calls after 2 warm-ups, per process; processes
    of the three implementations alternate for --rounds rounds and the runs
    are pooled): the shipped hyperprior at its default quality, a factorized
    model (N=128, M=192, random weights, like CompressAI's bmshj2018 q3) and an
    rnn (width 0.25, random weights) at 1 and at its default iterations;
    the channel-conditional codec (Minnen & Singh 2020): the zoo's
    `channelwise` family at its default quality if this checkout ships one,
    else a `channelwise-vr` model with random weights (N=128, M=192, default
    slices and context) at its default quality; its table gives its ratio to
    the shipped hyperprior of the same run (target <= 2x) and its speed-up
    over CompressAI's hyperprior q3 (target >= 2x). A previous checkout
    without `tfc_codecs/codecs/channelwise.py` runs only the others, so
    channelwise is then measured for the new version alone;
    CompressAI's bmshj2018 hyperprior/factorized q3 (random weights) through
    its recipe's `bench_cai.py`, if its venv exists (set it up per
    ../shared/peers/compressai-cpu/README.md in --compressai);
  * the command line, process start to file written: `tfc_codecs compress
    kodim01.png` and `decompress`, cold (empty function cache) and warm;
  * a folder of the 24 Kodak images in one call, images/s;
  * peak resident memory (ru_maxrss) of each process.
Both versions run the same model files (the shipped hyperprior of this
checkout is passed by path, `--model`); the script checks that they write
identical files and compares their decoded images. The previous version is
another checkout of this repository, run with its own code: `--previous`
names one; without it (or if it names this checkout) the script makes a
temporary `git worktree add --detach` of `--previous_commit` (default
PREVIOUS_COMMIT, the last commit before channelwise) and removes it
(`git worktree remove --force`) when done, also after an error.
The report also records the CPU: `lscpu`'s model name and whether it has
the avx2, avx512f, avx512_bf16 and amx_bf16 flags.
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
from tfc_codecs import model_dir, zoo  # pylint: disable=wrong-import-position

IMAGE = "kodim01.png"
WARMUP, REPS = 2, 7
RNN_WIDTH = 0.25
RNN_DEFAULT_ITERATIONS = 8  # RnnCodec's default quality.
# The previous version by default: the last commit before channelwise.
PREVIOUS_COMMIT = "4ee8d89"
CHANNELWISE_SOURCE = os.path.join("tfc_codecs", "codecs", "channelwise.py")
CHANNELWISE_RANDOM = dict(num_filters=128, latent_filters=192)  # Default slices, context.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")

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

# Random-weight models: argv is NAME=PATH pairs, NAME a key of CONFIGS.
MAKE_MODELS = r'''
import sys
import tfc_codecs
from tfc_codecs import model_dir, registry
CONFIGS = {"factorized": dict(num_filters=128, latent_filters=192), "rnn": dict(width=%r),
           "channelwise-vr": %r}
for name, path in (arg.split("=", 1) for arg in sys.argv[1:]):
  net = registry.codec_class(name)(**CONFIGS[name])
  model_dir.round_weights(net)
  net.freeze()
  model_dir.save(net, path, provenance={"note": "random weights, for speed only"})
''' % (RNN_WIDTH, CHANNELWISE_RANDOM)


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
  """Per model: pooled compress/decompress runs of each version that it
  names (model, qualities, warmup, reps, version names)."""
  results = {}
  for name, (model, qualities, warmup, reps, names) in models.items():
    pooled = {}
    for _ in range(rounds):
      for version, root in versions.items():
        if version not in names:
          continue
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
    if "previous" in pooled:
      _compare_decoded(name, pooled, work)
    else:  # Only the new version: its PSNR alone.
      _compare_decoded(name, pooled, work, versions=("new",))
    print(name, json.dumps({v: {q: (p["compress_s"], p["decompress_s"]) for q, p in e.items()
                                if q != "peak_rss_mb"} for v, e in pooled.items()}), flush=True)
  return results


def _compare_decoded(name, pooled, work, versions=("previous", "new")):
  """Records, per quality, whether the versions' files are identical and how
  their decoded images differ (samples, PSNR against the original); with
  only the new version, its PSNR."""
  original = _read_rgb(os.path.join(KODAK, IMAGE)).astype(np.float64)
  psnr = lambda x: float(10 * np.log10(255 ** 2 / np.mean((x.astype(np.float64) - original) ** 2)))
  for quality, point in pooled["new"].items():
    if quality == "peak_rss_mb":
      continue
    if "previous" not in versions:
      point["psnr_db"] = psnr(np.load(os.path.join(work, f"{name}-new", f"decoded-{quality}.npy")))
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


def cpu_kind():
  """`lscpu`'s model name and which of CPU_FLAGS the CPU has (the flags from
  /proc/cpuinfo if lscpu lists none)."""
  try:
    text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    text = ""
  fields = {}
  for line in text.splitlines():
    if ":" in line:
      key, value = line.split(":", 1)
      fields.setdefault(key.strip(), value.strip())
  flags = set(fields.get("Flags", "").split())
  if not flags and os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      flags = set(next((l.split(":", 1)[1] for l in f if l.startswith("flags")), "").split())
  return dict(model_name=fields.get("Model name", "unknown"),
              flags={flag: flag in flags for flag in CPU_FLAGS})


def _machine(cpu):
  flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in cpu["flags"].items())
  return f"{os.cpu_count()} CPU cores, {cpu['model_name']} ({flags})"


def previous_checkout(path, commit):
  """(root of the previous version, temporary worktree to remove or None):
  `path` if it names another checkout, else a new detached `git worktree`
  of `commit`."""
  if path and os.path.realpath(path) != os.path.realpath(ROOT):
    return os.path.abspath(path), None
  tree = os.path.join(tempfile.mkdtemp(prefix="tfc_codecs-speed-previous-"), "checkout")
  done = subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, commit],
                        capture_output=True, text=True)
  if done.returncode:
    shutil.rmtree(os.path.dirname(tree), ignore_errors=True)
    raise RuntimeError(f"git worktree add of {commit} failed:\n{done.stderr}")
  print("previous:", commit, "in the temporary worktree", tree, flush=True)
  return tree, tree


def remove_worktree(tree):
  subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], check=False)
  shutil.rmtree(os.path.dirname(tree), ignore_errors=True)
  subprocess.run(["git", "-C", ROOT, "worktree", "prune"], check=False)


def _commit(root):
  """Short HEAD of a checkout, marked if its code (tfc_codecs/, bin/) has
  uncommitted changes: those are what ran."""
  git = lambda *argv: subprocess.run(["git", "-C", root, *argv], capture_output=True,
                                     text=True).stdout.strip()
  dirty = git("status", "--porcelain", "--untracked-files=no", "--", "tfc_codecs", "bin")
  return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def _channelwise_table(report):
  """Markdown lines on the channel-conditional codec, against the shipped
  hyperprior of the same run and CompressAI's hyperprior q3."""
  info, steady = report["channelwise"], report["steady_state"]
  if "channelwise" not in steady:
    return []
  ref = report["compressai"].get("hyperprior")
  ratio = lambda a, b: a / b if b else float("nan")
  lines = ["", f"Channel-conditional codec (Minnen & Singh 2020): {info['description']}. "
           "Ratio = its seconds / the shipped hyperprior's (same version, same run; target <= 2x); "
           "speed-up = CompressAI bmshj2018-hyperprior q3 (N=128, M=192) seconds / its seconds "
           "(target >= 2x)." + ("" if "previous" in steady["channelwise"] else
                                " The previous version has no channelwise codec: new only."), "",
           "| version | compress s | decompress s | ratio to hyperprior (c / d) | "
           "speed-up vs CompressAI hyperprior q3 (c / d) | peak RSS MB | bytes | PSNR dB | targets met |",
           "|---|---|---|---|---|---|---|---|---|"]
  for version in ("new", "previous"):
    if version not in steady["channelwise"]:
      continue
    entry = steady["channelwise"][version]
    point = next(p for q, p in entry.items() if q != "peak_rss_mb")
    hyper = next(p for q, p in steady["hyperprior"][version].items() if q != "peak_rss_mb")
    c_ratio = ratio(point["compress_s"], hyper["compress_s"])
    d_ratio = ratio(point["decompress_s"], hyper["decompress_s"])
    met = c_ratio <= 2 and d_ratio <= 2
    if ref:
      c_up = ratio(ref["compress_s"], point["compress_s"])
      d_up = ratio(ref["decompress_s"], point["decompress_s"])
      versus_cai = f"{c_up:.2f}x / {d_up:.2f}x"
      met = met and c_up >= 2 and d_up >= 2
    else:
      versus_cai = "– (no CompressAI venv)"
    lines.append(f"| {version} | {point['compress_s']:.3f} | {point['decompress_s']:.3f} | "
                 f"{c_ratio:.2f}x / {d_ratio:.2f}x | {versus_cai} | {entry['peak_rss_mb']:.0f} | "
                 f"{point['bytes']} | {point['psnr_db']:.4f} | "
                 f"{'yes' if met else 'NO'}{'' if ref else ' (ratio only)'} |")
  return lines


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
  lines += _channelwise_table(report)
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
  if "wall_s" in report:
    lines.append(f"\nWall time of the whole run: {report['wall_s'] / 60:.1f} min.")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--previous", default=None,
                      help="Checkout of the previous version of this repository; by default "
                           "(or if it is this checkout) a temporary git worktree of "
                           "--previous_commit.")
  parser.add_argument("--previous_commit", default=PREVIOUS_COMMIT,
                      help="Commit of the previous version when --previous is not another "
                           "checkout.")
  parser.add_argument("--compressai", default=os.path.join(ROOT, "..", "peer-cai"),
                      help="Folder of the CompressAI recipe with its venv/.")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--condition", default="",
                      help="What else ran on the machine, for the record.")
  args = parser.parse_args()
  started = time.perf_counter()
  image = os.path.abspath(os.path.join(KODAK, IMAGE))
  previous, worktree = previous_checkout(args.previous, args.previous_commit)
  work = tempfile.mkdtemp(prefix="tfc_codecs-speed-")
  try:
    versions = {"previous": previous, "new": ROOT}
    cache = os.path.join(work, "cache")
    models = {name: os.path.join(work, name) for name in ("factorized", "rnn")}
    make = [f"factorized={models['factorized']}", f"rnn={models['rnn']}"]
    if "channelwise" in zoo.family_names():
      channelwise = zoo.resolve("channelwise")
      description = "the shipped `channelwise` model"
    else:
      channelwise = os.path.join(work, "channelwise-vr")
      make.append(f"channelwise-vr={channelwise}")
      description = ("a `channelwise-vr` model with random weights (N=128, M=192, default "
                     "slices and context; the zoo has no `channelwise` family yet)")
    _run([sys.executable, "-c", MAKE_MODELS, *make], _env(ROOT, cache))
    meta = model_dir.read_meta(channelwise)
    quality = meta["default_quality"] or zoo.quality_of(channelwise)
    channelwise_versions = ("previous", "new") if os.path.exists(
        os.path.join(previous, CHANNELWISE_SOURCE)) else ("new",)
    rnn_iterations = f"1,{RNN_DEFAULT_ITERATIONS}"
    cpu = cpu_kind()
    report = dict(
        machine=_machine(cpu), cpu=cpu, image=f"{IMAGE} (768x512)",
        condition=args.condition, warmup=WARMUP, reps=REPS, rounds=args.rounds,
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        commits={version: _commit(root) for version, root in versions.items()},
        previous_source=("temporary git worktree of " + args.previous_commit if worktree
                         else previous),
        channelwise=dict(
            description=f"{description}, {meta['codec']} at quality {quality} "
                        f"(its default), fingerprint {meta['fingerprint']}",
            shipped=channelwise.startswith(zoo.ZOO_DIR), codec=meta["codec"],
            config=meta["config"], quality=quality, fingerprint=meta["fingerprint"],
            versions=list(channelwise_versions)))
    report["compressai"] = compressai(args.compressai, args.rounds, image)
    both = ("previous", "new")
    report["steady_state"] = steady_state(versions, cache, args.rounds, image, {
        "hyperprior": (zoo.resolve("hyperprior"), "", WARMUP, REPS, both),
        "factorized": (models["factorized"], "", WARMUP, REPS, both),
        "channelwise": (channelwise, "", WARMUP, REPS, channelwise_versions),
        "rnn": (models["rnn"], rnn_iterations, 1, 3, both)}, work)
    report["command_line"] = command_line(versions, args.rounds + 1, image, work)
    report["folder"] = folder(versions, work)
  finally:
    shutil.rmtree(work, ignore_errors=True)
    if worktree:
      remove_worktree(worktree)
  report["wall_s"] = time.perf_counter() - started
  out_dir = os.path.join(ROOT, "benchmarks", "results")
  write_json(os.path.join(out_dir, "speed.json"), report)
  table = _table(report)
  with open(os.path.join(out_dir, "speed.md"), "w") as f:
    f.write(table)
  print(table)


if __name__ == "__main__":
  main()
