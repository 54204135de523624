"""Compress/decompress seconds of one image on each install profile, side by
side in one run: the `[train]` install (this interpreter: TensorFlow 2.14 with
tensorflow-compression, range coder and stock coder) and the plain install
(`--plain_python`, e.g. the newest TensorFlow without TFC, which
tests/test_plain_install.py builds in .venv-plain). Each runs in its own
process through `tfc_codecs.load(model)`: the load, a first call of each, then
the median of `--repeats` calls. Also records each profile's site-packages
size. Writes benchmarks/results/install_profiles.json and .md.

    python benchmarks/install_profiles.py [--image kodim01.png] [--repeats 5]
"""

import argparse
import json
import os
import subprocess
import sys

import common  # pylint: disable=import-error
import speed  # pylint: disable=import-error

TIMING = r"""
import importlib.metadata, json, statistics, sys, time
start = time.perf_counter()
import numpy as np
import tfc_codecs
from tfc_codecs import images
imported = time.perf_counter()
image, _ = images.read_image(sys.argv[1])
codec = tfc_codecs.load(sys.argv[2], ops=sys.argv[3] or None)
loaded = time.perf_counter()
data = codec.compress(image)
first_compress = time.perf_counter()
decoded = codec.decompress(data)
first_decompress = time.perf_counter()
compress, decompress = [], []
for _ in range(int(sys.argv[4])):
  t = time.perf_counter(); codec.compress(image); compress.append(time.perf_counter() - t)
  t = time.perf_counter(); codec.decompress(data); decompress.append(time.perf_counter() - t)
print(json.dumps(dict(
    tensorflow=importlib.metadata.version("tensorflow"), ops=codec.ops,
    tfc_imported="tensorflow_compression" in sys.modules, bytes=len(data),
    import_s=imported - start, load_s=loaded - imported,
    first_compress_s=first_compress - loaded, first_decompress_s=first_decompress - first_compress,
    compress_s=statistics.median(compress), decompress_s=statistics.median(decompress),
    decoded_sha=__import__("hashlib").sha256(decoded.tobytes()).hexdigest()[:16])))
"""


def site_packages_mb(python: str) -> float:
  """Size of the environment's site-packages in MB."""
  path = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True, check=True).stdout.strip()
  size = subprocess.run(["du", "-sm", path], capture_output=True, text=True, check=True)
  return float(size.stdout.split()[0])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--image", default=os.path.join(common.KODAK, "kodim01.png"))
  parser.add_argument("--model", default="channelwise")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--plain_python", default=os.path.join(common.ROOT, ".venv-plain", "bin",
                                                             "python"))
  parser.add_argument("--output", default=os.path.join(common.ROOT, "benchmarks", "results",
                                                       "install_profiles"))
  args = parser.parse_args()
  if not os.path.isfile(args.plain_python):
    sys.exit(f"no plain install at {args.plain_python} (run tests/test_plain_install.py "
             "or pass --plain_python)")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  profiles = [("[train]", sys.executable, "tfc"), ("[train]", sys.executable, "stock"),
              ("plain", args.plain_python, "")]
  rows = []
  for profile, python, ops in profiles:
    done = subprocess.run([python, "-c", TIMING, args.image, args.model, ops, str(args.repeats)],
                          capture_output=True, text=True, env=env, cwd=common.ROOT)
    if done.returncode:
      sys.exit(f"{profile} failed: {done.stderr[-2000:]}")
    row = dict(profile=profile, **json.loads(done.stdout.strip().splitlines()[-1]),
               site_packages_mb=site_packages_mb(python))
    rows.append(row)
    print(json.dumps(row), flush=True)
  report = dict(image=os.path.basename(args.image), model=args.model, repeats=args.repeats,
                cpu=speed.cpu_kind(),
                load_average=os.getloadavg(), rows=rows)
  common.write_json(args.output + ".json", report)
  lines = [f"`python benchmarks/install_profiles.py`: {args.model} on {report['image']}, "
           f"default quality, medians of {args.repeats} after a first call; load average "
           f"{report['load_average'][0]:.1f} at the end.", "",
           "| profile | TensorFlow | coder | TFC imported | bytes | load s | first compress s | "
           "first decompress s | compress s | decompress s | decoded image (SHA-256) | "
           "site-packages MB |", "|---" * 12 + "|"]
  for r in rows:
    lines.append(f"| {r['profile']} | {r['tensorflow']} | {r['ops']} | {r['tfc_imported']} | "
                 f"{r['bytes']} | {r['load_s']:.2f} | {r['first_compress_s']:.2f} | "
                 f"{r['first_decompress_s']:.2f} | {r['compress_s']:.3f} | "
                 f"{r['decompress_s']:.3f} | {r['decoded_sha']} | {r['site_packages_mb']:.0f} |")
  with open(args.output + ".md", "w") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {args.output}.json, .md")


if __name__ == "__main__":
  main()
