"""Load test of `tfc_codecs serve`: many clients, mixed and malformed requests.

    python tests/stress/serving_load.py [--model hyperprior] [--clients 32] [--seconds 60]

Exports MODEL, serves it (`tfc_codecs serve` in a subprocess) and runs
CLIENTS threads for SECONDS, each cycling through a mix of requests over REST
and gRPC: valid compress (PNG in) and decompress (.tfci in), checked
byte-for-byte against the library, and malformed ones (a truncated and a
corrupted .tfci, non-image bytes, invalid JSON, an unknown signature), which
must be refused with a client error (HTTP 4xx / INVALID_ARGUMENT-like code),
never a server error. The server's resident memory is sampled every 0.5 s;
"flat" means the peak of the last quarter of the run is within 10% (+64 MiB)
of the peak of the second quarter (after warm-up). Writes
benchmarks/results/serving_load-OPS.json. tests/test_serving_load.py runs it
for a few seconds.
"""

import argparse
import itertools
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))

from tfc_codecs import api, export, images  # pylint: disable=wrong-import-position
from tfc_codecs.errors import CodecError  # pylint: disable=wrong-import-position
from tfc_codecs.serving import commands  # pylint: disable=wrong-import-position
from tfc_codecs.serving.client import Client  # pylint: disable=wrong-import-position

RESULTS = REPO / "benchmarks" / "results" / "serving_load-{ops}.json"
KODIM01 = REPO.parent / "shared" / "data" / "kodak" / "kodim01.png"
SERVER_ERRORS = ("HTTP 5", "INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS",
                 "cannot reach", "did not answer")


def rss_bytes(pid: int) -> int:
  """Resident set size of a process (Linux)."""
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) * 1024
  return 0


def start_server(model_base_path: str):
  """Starts `tfc_codecs serve` on free ports; returns (process, rest, grpc)."""
  process, addresses = commands.start_server(
      ["--model_base_path", model_base_path, "--model_name", "default",
       "--host", "127.0.0.1", "--port", "0", "--rest_api_port", "0"])
  return process, addresses["REST"], addresses["gRPC"]


def request_mix(image_png: bytes, bitstream: bytes,
                decoded_png: bytes) -> List[Dict[str, Any]]:
  """The requests the clients cycle through: 2 valid compress, 2 valid
  decompress and 4 malformed per round, half on each protocol."""
  corrupted = bytearray(bitstream)
  corrupted[len(corrupted) // 2] ^= 0xFF
  valid = [dict(name="compress", signature="serving_default",
                inputs=dict(image_bytes=image_png), output="bitstream_bytes",
                expected=bitstream),
           dict(name="decompress", signature="decompress",
                inputs=dict(bitstream_bytes=bitstream), output="png_bytes",
                expected=decoded_png)]
  malformed = [dict(name="truncated .tfci", signature="decompress",
                    inputs=dict(bitstream_bytes=bitstream[:len(bitstream) // 3]),
                    output="png_bytes"),
               dict(name="corrupted .tfci", signature="decompress",
                    inputs=dict(bitstream_bytes=bytes(corrupted)), output="png_bytes"),
               dict(name="non-image bytes", signature="serving_default",
                    inputs=dict(image_bytes=b"not an image at all"),
                    output="bitstream_bytes"),
               dict(name="unknown signature", signature="no_such_signature",
                    inputs=dict(bitstream_bytes=bitstream), output="png_bytes")]
  mix = []
  for use_grpc in (False, True):
    mix += [dict(case, grpc=use_grpc) for case in valid + malformed]
  mix.append(dict(name="invalid JSON", grpc=False, raw_body=b'{"inputs": [1, 2'))
  return mix


def _send(client: Client, rest: str, model_name: str, case) -> bytes:
  if "raw_body" in case:
    request = urllib.request.Request(f"http://{rest}/v1/models/{model_name}:predict",
                                     data=case["raw_body"])
    try:
      with urllib.request.urlopen(request, timeout=600) as reply:
        return reply.read()
    except urllib.error.HTTPError as e:
      raise CodecError(f"server error (HTTP {e.code})") from None
  return client.predict(case["signature"], case["inputs"], case["output"])


def run_load(rest: str, grpc_address: str, model_name: str, mix, clients: int,
             seconds: float, server_pid: int) -> Dict[str, Any]:
  """Runs the load; returns counts per request kind, latencies and memory."""
  lock = threading.Lock()
  counts: Dict[str, Dict[str, int]] = {}
  refusals: Dict[str, str] = {}  # First error message per malformed request kind.
  failures: List[str] = []
  memory: List[Any] = []
  start = time.monotonic()
  deadline = start + seconds
  done = threading.Event()

  def count(case, outcome):
    key = f"{case['name']} ({'gRPC' if case['grpc'] else 'REST'})"
    with lock:
      counts.setdefault(key, {}).setdefault(outcome, 0)
      counts[key][outcome] += 1

  def client_loop(index):
    rest_client = Client(rest, model_name)
    grpc_client = Client(grpc_address, model_name, use_grpc=True)
    try:
      for i in itertools.count(index):
        if time.monotonic() >= deadline:
          return
        case = mix[i % len(mix)]
        client = grpc_client if case["grpc"] else rest_client
        try:
          answer = _send(client, rest, model_name, case)
        except CodecError as e:
          server_side = any(s in str(e) for s in SERVER_ERRORS)
          outcome = "server error" if server_side else "refused"
          with lock:
            refusals.setdefault(case["name"], str(e))
          if "expected" in case or server_side:
            with lock:
              failures.append(f"{case['name']}: {e}")
        else:
          outcome = ("ok" if answer == case.get("expected") else
                     "wrong" if "expected" in case else "accepted malformed")
          if outcome != "ok":
            with lock:
              failures.append(f"{case['name']}: {outcome}")
        count(case, outcome)
    finally:
      rest_client.close()
      grpc_client.close()

  def sample_memory():
    while not done.wait(0.5):
      memory.append((round(time.monotonic() - start, 2), rss_bytes(server_pid)))

  sampler = threading.Thread(target=sample_memory, daemon=True)
  sampler.start()
  threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  done.set()
  sampler.join()
  wall = time.monotonic() - start
  quarter = max(1, len(memory) // 4)
  warm_peak = max(m for _, m in memory[quarter:2 * quarter] or memory)
  end_peak = max(m for _, m in memory[-quarter:])
  total = lambda outcome: sum(c.get(outcome, 0) for c in counts.values())
  return dict(
      clients=clients, seconds=round(wall, 1), requests=sum(map(sum, (
          c.values() for c in counts.values()))), counts=counts,
      valid_ok=total("ok"), wrong_results=total("wrong"),
      server_errors=total("server error"), malformed_refused=total("refused"),
      malformed_accepted=total("accepted malformed"), refusals=refusals,
      failures=failures[:20],
      rss_warm_peak_mib=round(warm_peak / 2**20, 1), rss_end_peak_mib=round(end_peak / 2**20, 1),
      memory_flat=end_peak <= 1.1 * warm_peak + (64 << 20),
      rss_samples_mib=[(t, round(m / 2**20, 1)) for t, m in memory])


def serve_and_load(model: str, clients: int, seconds: float, image_path: str,
                   ops: str = "stock") -> Dict[str, Any]:
  """Exports `model` (entropy coder `ops`), serves it, runs the load; returns the result."""
  image = images.read_image(image_path)[0]
  codec = api.load(model, ops=ops)
  with tempfile.TemporaryDirectory() as base:
    path = export.export(model, base, model_name="default", ops=ops)
    bitstream = codec.compress(image)  # The default quality, as serving_default.
    mix = request_mix(images.encode_png(image), bitstream,
                      images.encode_png(codec.decompress(bitstream)))
    process, rest, grpc_address = start_server(os.path.dirname(path))
    try:
      result = run_load(rest, grpc_address, "default", mix, clients, seconds, process.pid)
    finally:
      process.terminate()
      process.wait()
  return dict(model=model, ops=ops, image=os.path.basename(image_path),
              size=f"{image.shape[1]}x{image.shape[0]}", **result)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="hyperprior")
  parser.add_argument("--image", default=str(KODIM01))
  parser.add_argument("--clients", type=int, default=32)
  parser.add_argument("--seconds", type=float, default=60.)
  parser.add_argument("--ops", choices=("stock", "tfc"), default="stock",
                      help="Entropy coder of the export.")
  args = parser.parse_args()
  result = serve_and_load(args.model, args.clients, args.seconds, args.image, args.ops)
  result["command"] = "python tests/stress/serving_load.py " + " ".join(sys.argv[1:])
  path = str(RESULTS).format(ops=args.ops)
  with open(path, "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
  print(json.dumps({k: v for k, v in result.items() if k != "rss_samples_mib"}, indent=1))
  ok = (result["wrong_results"] == result["server_errors"] == 0
        and result["malformed_accepted"] == 0 and result["memory_flat"])
  sys.exit(0 if ok else 1)


if __name__ == "__main__":
  main()
