"""CPU speed of the shipped models side by side with CompressAI, per CPU kind.

    python benchmarks/speed.py [--compressai ../peer-cai] [--rounds 2] [--condition TEXT]

One run, one image (kodim23, 768x512), processes alternating for --rounds
rounds, runs pooled, medians:
  * the shipped models through the public API (`tfc_codecs.load(name)`, one
    process per model, its default quality): hyperprior, factorized,
    channelwise (the default family) and rnn at RNN_ITERATIONS iterations;
    compress and decompress, REPS calls after WARMUP warm-ups (the rnn:
    RNN_REPS after one);
  * CompressAI 1.2.8's bmshj2018-hyperprior at quality 3 (N=128, M=192, the
    shipped hyperprior's; random weights, speed only) through the peer
    recipe's bench_cai.py (../shared/peers/compressai-cpu/README.md) in the
    venv under --compressai; without that venv the run says so and reports no
    CompressAI ratios.
Targets (issue 37): every transform codec at least 2x faster than
CompressAI's hyperprior, compress and decompress; channelwise at most 2x and
the rnn at most 5x the shipped hyperprior's time, each way.
The CPU kind, `lscpu`'s model name and which of CPU_FLAGS it has, names the
result: benchmarks/results/speed-<kind>.{json,md}, one per CPU kind, so a run
on another kind adds files. The report records the load: load averages, the
`tfc_codecs train` runs beside it and the CPU time other processes took.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from common import KODAK, ROOT, write_json

IMAGE = "kodim23.png"
WARMUP, REPS = 2, 5
RNN_ITERATIONS, RNN_REPS = 8, 3
MODELS = ("hyperprior", "factorized", "channelwise", "rnn")
TRANSFORM_CODECS = ("hyperprior", "factorized", "channelwise")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# Targets: (what, model, reference, at least this speed-up of model over reference).
TARGETS = [(f"{name} vs CompressAI hyperprior q3: >= 2x faster", name, "compressai", 2.)
           for name in TRANSFORM_CODECS] + [
    ("channelwise: <= 2x the hyperprior's time", "channelwise", "hyperprior", .5),
    (f"rnn ({RNN_ITERATIONS} iterations): <= 5x the hyperprior's time", "rnn", "hyperprior", .2)]

# One shipped model timed in a fresh process through the public API.
CHILD = r'''
import hashlib, json, resource, sys, time
import numpy as np
import tfc_codecs
from tfc_codecs import images
name, quality, image_path, warmup, reps = sys.argv[1:6]
codec = tfc_codecs.load(name)
quality = int(quality) or None
image, _ = images.read_image(image_path)

def timed(fn):
  for _ in range(int(warmup)):
    value = fn()
  runs = []
  for _ in range(int(reps)):
    start = time.perf_counter()
    value = fn()
    runs.append(time.perf_counter() - start)
  return value, runs

data, compress_runs = timed(lambda: codec.compress(image, quality=quality))
decoded, decompress_runs = timed(lambda: codec.decompress(data))
mse = np.mean((decoded.astype(np.float64) - image) ** 2)
print("RESULT " + json.dumps(dict(
    codec=codec.codec_name, quality=quality or codec.default_quality, source=codec.source,
    compress_runs=compress_runs, decompress_runs=decompress_runs, bytes=len(data),
    bpp=8 * len(data) / (image.shape[0] * image.shape[1]),
    psnr_db=float(10 * np.log10(255 ** 2 / mse)),
    file_sha256=hashlib.sha256(data).hexdigest(),
    peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
'''


def _run(argv, env):
  """Runs a process; its RESULT line, parsed."""
  done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
  if done.returncode:
    raise RuntimeError(f"{' '.join(argv[:4])} ... failed:\n{done.stderr[-3000:]}")
  return json.loads([l for l in done.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])


def _tfc_env(cache):
  env = {k: v for k, v in os.environ.items() if k not in ("TF2_BEHAVIOR", "PYTHONPATH")}
  env.update(PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", TFC_CODECS_CACHE=cache)
  return env


def time_tfc(name, image, cache):
  quality, warmup, reps = ((RNN_ITERATIONS, 1, RNN_REPS) if name == "rnn" else (0, WARMUP, REPS))
  return _run([sys.executable, "-c", CHILD, name, str(quality), image, str(warmup), str(reps)],
              _tfc_env(cache))


def time_compressai(python, peer, image):
  result = _run([python, os.path.join(peer, "bench_cai.py"), "hyperprior", "3", "--image", image,
                 "--threads", str(os.cpu_count()), "--warmup", str(WARMUP), "--reps", str(REPS)],
                dict(os.environ))
  return dict(compress_runs=result["runs_compress"], decompress_runs=result["runs_decompress"],
              bytes=result["bytes"], bpp=result["bpp"], peak_rss_mb=result["peak_rss_mb"],
              versions=dict(compressai=result["compressai"], torch=result["torch"],
                            N=result["N"], M=result["M"], threads=result["threads"]))


def cpu_kind():
  """`lscpu`'s model name, CPU family/model numbers and which of CPU_FLAGS
  the CPU has (flags from /proc/cpuinfo if lscpu lists none), and the slug
  naming its result files."""
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
  name = fields.get("Model name", "unknown")
  present = [flag for flag in CPU_FLAGS if flag in flags]
  slug = "_".join([re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")]
                  + [flag.replace("_", "") for flag in present])
  return dict(model_name=name, family=fields.get("CPU family"), model=fields.get("Model"),
              cores=os.cpu_count(), flags={flag: flag in flags for flag in CPU_FLAGS}, slug=slug)


def _processes():
  """pid -> (CPU seconds so far, nice, command line) of every process."""
  ticks = os.sysconf("SC_CLK_TCK")
  result = {}
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      with open(f"/proc/{pid}/stat") as f:
        stat = f.read().rsplit(")", 1)[1].split()
      with open(f"/proc/{pid}/cmdline", "rb") as f:
        command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
      continue
    result[int(pid)] = ((int(stat[11]) + int(stat[12])) / ticks, int(stat[16]), command)
  return result


def load_report(before, after, load_before, wall):
  """What else ran: load averages, `tfc_codecs train` runs, and the other
  processes' CPU seconds during the run (processes alive at its end; this
  run's own children have exited)."""
  ours = {os.getpid(), os.getppid()}
  others = []
  for pid, (cpu, nice, command) in after.items():
    used = cpu - before.get(pid, (0., 0, ""))[0]
    if pid not in ours and used >= 1. and command:
      others.append(dict(pid=pid, nice=nice, cpu_s=round(used, 1), command=command[:120]))
  others.sort(key=lambda p: -p["cpu_s"])
  training = [p for p in others if re.search(r"tfc_codecs\S* train\b", p["command"])]
  return dict(load_average_before=[round(x, 2) for x in load_before],
              load_average_after=[round(x, 2) for x in os.getloadavg()],
              training_beside=bool(training),
              training_nice=sorted({p["nice"] for p in training}),
              other_cpu_s=round(sum(p["cpu_s"] for p in others), 1),
              other_cores_mean=round(sum(p["cpu_s"] for p in others) / wall, 2),
              busiest_others=others[:6])


def _commit():
  """Short HEAD, marked if tfc_codecs/ has uncommitted changes (they ran)."""
  git = lambda *argv: subprocess.run(["git", "-C", ROOT, *argv], capture_output=True,
                                     text=True).stdout.strip()
  dirty = git("status", "--porcelain", "--untracked-files=no", "--", "tfc_codecs")
  return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else "")


def speed_up(results, model, reference):
  """(compress, decompress) seconds of `reference` / those of `model`."""
  if reference not in results:
    return None
  return tuple(results[reference][f"{step}_s"] / results[model][f"{step}_s"]
               for step in ("compress", "decompress"))


def markdown(report):
  """The Markdown summary of a report."""
  cpu, load, results = report["cpu"], report["load"], report["results"]
  flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in cpu["flags"].items())
  lines = [f"# Speed on {cpu['model_name']} (family {cpu['family']}, model {cpu['model']}; "
           f"{flags}), {cpu['cores']} cores", "",
           f"`python benchmarks/speed.py` at {report['commit']}, {report['started']}; "
           f"{report['image']}, {report['rounds']} rounds, medians of {report['runs']}.", "",
           f"Load: load average {load['load_average_before']} before, "
           f"{load['load_average_after']} after; training beside: "
           f"{'yes (nice ' + ', '.join(map(str, load['training_nice'])) + ')' if load['training_beside'] else 'no'}; "
           f"other processes took {load['other_cpu_s']} CPU s "
           f"({load['other_cores_mean']} cores on average). {report['condition']}".rstrip(), ""]
  if "compressai" not in results:
    lines += [f"**CompressAI not run**: {report['compressai_missing']}", ""]
  lines += ["| model | quality | compress s | decompress s | speed-up vs CompressAI hyperprior "
            "(c / d) | bytes | bpp | PSNR dB | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
  for name, point in results.items():
    if name == "compressai":
      v = point["versions"]
      label, quality = f"CompressAI {v['compressai']} bmshj2018-hyperprior (torch {v['torch']}, " \
                       f"N={v['N']}, M={v['M']}, random weights)", 3
    else:
      label, quality = f"{name} (shipped {point['codec']})", point["quality"]
    ratio = speed_up(results, name, "compressai")
    psnr = f"{point['psnr_db']:.2f}" if "psnr_db" in point else "– (random weights)"
    lines.append(f"| {label} | {quality} | {point['compress_s']:.3f} | {point['decompress_s']:.3f} | "
                 f"{f'{ratio[0]:.2f}x / {ratio[1]:.2f}x' if ratio else '–'} | {point['bytes']} | "
                 f"{point['bpp']:.3f} | {psnr} | "
                 f"{point['peak_rss_mb']:.0f} |")
  lines += ["", "| target | compress | decompress | met |", "|---|---|---|---|"]
  for target in report["targets"]:
    if target["speed_up"] is None:
      lines.append(f"| {target['target']} | – | – | – (no CompressAI) |")
      continue
    c, d = target["speed_up"]
    show = lambda x: f"{x:.2f}x" if target["at_least"] >= 1 else f"{1 / x:.2f}x the time"
    lines.append(f"| {target['target']} | {show(c)} | {show(d)} | {'yes' if target['met'] else 'NO'} |")
  lines.append(f"\nWall time of the run: {report['wall_s'] / 60:.1f} min.")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--compressai", default=os.path.join(ROOT, "..", "peer-cai"),
                      help="Folder with the CompressAI recipe's bench_cai.py and its venv/ "
                           "(set up per ../shared/peers/compressai-cpu/README.md).")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--condition", default="", help="Anything else about the load, for the record.")
  args = parser.parse_args()
  started, load_before, before = time.perf_counter(), os.getloadavg(), _processes()
  image = os.path.abspath(os.path.join(KODAK, IMAGE))
  peer = os.path.abspath(args.compressai)
  python = os.path.join(peer, "venv", "bin", "python")
  missing = None
  if not os.path.exists(python) or not os.path.exists(os.path.join(peer, "bench_cai.py")):
    missing = (f"no CompressAI venv at {python} (or no bench_cai.py beside it); set it up per "
               "../shared/peers/compressai-cpu/README.md and pass its folder as --compressai")
    print("WARNING:", missing, file=sys.stderr, flush=True)
  cpu = cpu_kind()
  report = dict(cpu=cpu, commit=_commit(), image=f"{IMAGE} (768x512)", rounds=args.rounds,
                runs=f"{args.rounds * REPS} calls after {WARMUP} warm-ups a process "
                     f"(rnn: {args.rounds * RNN_REPS} after 1)",
                condition=args.condition,
                started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
  if missing:
    report["compressai_missing"] = missing
  pooled = {}
  cache = tempfile.mkdtemp(prefix="tfc_codecs-speed-cache-")
  try:
    for round_ in range(args.rounds):
      order = (["compressai"] if not missing else []) + list(MODELS)
      for name in order if round_ % 2 == 0 else order[::-1]:
        result = (time_compressai(python, peer, image) if name == "compressai"
                  else time_tfc(name, image, cache))
        entry = pooled.setdefault(name, dict(result, compress_runs=[], decompress_runs=[],
                                             peak_rss_mb=0.))
        entry["compress_runs"] += result["compress_runs"]
        entry["decompress_runs"] += result["decompress_runs"]
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], result["peak_rss_mb"])
        print(name, f"compress {statistics.median(result['compress_runs']):.3f} s, decompress "
              f"{statistics.median(result['decompress_runs']):.3f} s", flush=True)
  finally:
    shutil.rmtree(cache, ignore_errors=True)
  for entry in pooled.values():
    entry["compress_s"] = float(statistics.median(entry["compress_runs"]))
    entry["decompress_s"] = float(statistics.median(entry["decompress_runs"]))
  report["results"] = {name: pooled[name] for name in list(MODELS) + ["compressai"] if name in pooled}
  report["targets"] = []
  for what, model, reference, at_least in TARGETS:
    ratios = speed_up(pooled, model, reference)
    report["targets"].append(dict(target=what, speed_up=ratios, at_least=at_least,
                                  met=None if ratios is None else min(ratios) >= at_least))
  report["wall_s"] = time.perf_counter() - started
  report["load"] = load_report(before, _processes(), load_before, report["wall_s"])
  out = os.path.join(ROOT, "benchmarks", "results", f"speed-{cpu['slug']}")
  write_json(out + ".json", report)
  with open(out + ".md", "w") as f:
    f.write(markdown(report))
  print(markdown(report))


if __name__ == "__main__":
  main()
