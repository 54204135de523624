"""Requests/s and latency of `tfc_codecs serve` for one 768x512 image.

    python benchmarks/serving_latency.py [--model hyperprior] [--seconds 20]

Exports MODEL (`tfc_codecs export`), serves it with `tfc_codecs serve` in a
subprocess, and for REST and gRPC, compress (`serving_default`, PNG bytes in)
and decompress (`decompress`, .tfci bytes in), runs 1, 4 and 16 concurrent
clients (threads of this process, each with its own `serving.client.Client`)
for SECONDS each. Every answer is checked against the library's bytes for the
same image; a wrong answer or an error aborts the run. Writes
benchmarks/results/serving_latency.{json,md}. Run it on an idle machine: the
server, the clients and anything else share the same two cores.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np

from common import KODAK, ROOT, write_json

from tfc_codecs import api, export, images  # pylint: disable=wrong-import-position
from tfc_codecs.serving import commands  # pylint: disable=wrong-import-position
from tfc_codecs.serving.client import Client  # pylint: disable=wrong-import-position

CLIENT_COUNTS = (1, 4, 16)
RESULTS = os.path.join(ROOT, "benchmarks", "results", "serving_latency")


def start_server(model_base_path: str):
  """Starts `tfc_codecs serve` on free ports; returns (process, rest, grpc)."""
  process, addresses = commands.start_server(
      ["--model_base_path", model_base_path, "--model_name", "default",
       "--host", "127.0.0.1", "--port", "0", "--rest_api_port", "0"])
  return process, addresses["REST"], addresses["gRPC"]


def run_clients(address: str, use_grpc: bool, signature: str, inputs, output: str,
                expected: bytes, clients: int, seconds: float):
  """Runs `clients` threads sending requests for `seconds`; returns latencies."""
  latencies = [[] for _ in range(clients)]
  errors = []
  deadline = time.perf_counter() + seconds

  def work(index):
    client = Client(address, "default", use_grpc=use_grpc)
    try:
      # Each client finishes at least two requests, so slow configurations still count.
      while time.perf_counter() < deadline or len(latencies[index]) < 2:
        start = time.perf_counter()
        answer = client.predict(signature, inputs, output)
        latencies[index].append(time.perf_counter() - start)
        if answer != expected:
          raise AssertionError(f"{signature}: answer differs from the library's bytes")
    except Exception as e:  # pylint: disable=broad-except
      errors.append(f"{type(e).__name__}: {e}")
    finally:
      client.close()

  start = time.perf_counter()
  threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  wall = time.perf_counter() - start
  if errors:
    raise SystemExit(f"{clients} clients, {signature}: {errors[0]}")
  flat = np.array([x for per_client in latencies for x in per_client])
  return dict(clients=clients, requests=int(flat.size),
              requests_per_second=round(flat.size / wall, 3),
              p50_ms=round(float(np.percentile(flat, 50)) * 1e3, 1),
              p99_ms=round(float(np.percentile(flat, 99)) * 1e3, 1),
              mean_ms=round(float(flat.mean()) * 1e3, 1))


def markdown(result) -> str:
  lines = [f"Model `{result['model']}`, {result['image']} ({result['size']}), "
           f"{result['seconds_per_configuration']} s per row, command: "
           f"`{result['command']}`", "",
           "| protocol | call | clients | requests/s | p50 ms | p99 ms |",
           "|---|---|---:|---:|---:|---:|"]
  for row in result["rows"]:
    lines.append(f"| {row['protocol']} | {row['call']} | {row['clients']} | "
                 f"{row['requests_per_second']:.2f} | {row['p50_ms']:.0f} | "
                 f"{row['p99_ms']:.0f} |")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="hyperprior")
  parser.add_argument("--image", default=os.path.join(KODAK, "kodim01.png"))
  parser.add_argument("--seconds", type=float, default=20.)
  parser.add_argument("--ops", choices=("stock", "tfc"), default="stock",
                      help="Entropy coder of the export (the results table was "
                      "measured with tfc, before stock became the default).")
  args = parser.parse_args()

  image = images.read_image(args.image)[0]
  png = images.encode_png(image)  # What a client would send: PNG bytes.
  codec = api.load(args.model, ops=args.ops)
  with tempfile.TemporaryDirectory() as base:
    path = export.export(args.model, base, model_name="default", ops=args.ops)
    bitstream = codec.compress(image)  # The default quality, as serving_default.
    expected_png = images.encode_png(codec.decompress(bitstream))
    calls = {"compress": ("serving_default", dict(image_bytes=png),
                          "bitstream_bytes", bitstream),
             "decompress": ("decompress", dict(bitstream_bytes=bitstream),
                            "png_bytes", expected_png)}
    process, rest, grpc = start_server(os.path.dirname(path))
    rows = []
    try:
      for protocol, address in (("REST", rest), ("gRPC", grpc)):
        for call, (signature, inputs, output, expected) in calls.items():
          run_clients(address, protocol == "gRPC", signature, inputs, output,
                      expected, 1, 0.)  # Warm-up.
          for clients in CLIENT_COUNTS:
            row = dict(protocol=protocol, call=call, **run_clients(
                address, protocol == "gRPC", signature, inputs, output, expected,
                clients, args.seconds))
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
      process.terminate()
      process.wait()

  result = dict(
      model=args.model, image=os.path.basename(args.image),
      size=f"{image.shape[1]}x{image.shape[0]}", quality=codec.default_quality,
      bitstream_bytes=len(bitstream), seconds_per_configuration=args.seconds,
      command="python benchmarks/serving_latency.py " + " ".join(sys.argv[1:]),
      machine=f"{os.cpu_count()} CPU cores; server and clients on the same machine",
      all_answers_bit_exact=True, rows=rows)
  write_json(RESULTS + ".json", result)
  with open(RESULTS + ".md", "w") as f:
    f.write(markdown(result))
  print(markdown(result))


if __name__ == "__main__":
  main()
