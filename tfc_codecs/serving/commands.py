"""The `tfc_codecs serve` and `tfc_codecs client` sub-commands.

`serve` takes tensorflow_model_server's flags and serves exported models
(`tfc_codecs export`) over TF Serving's REST and gRPC APIs; `client
compress/decompress` send files to such a server and write what it returns,
named as local `tfc_codecs compress/decompress` name their outputs.
"""

import ctypes
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from typing import Dict, Sequence, Tuple

from tfc_codecs.errors import CodecError

_M_ARENA_MAX = -8  # mallopt parameter (glibc malloc.h).
GRACE_SECONDS = 30.  # How long a shutdown waits for requests in flight.


def _cap_malloc_arenas(arenas: int = 2) -> None:
  """Caps glibc's malloc arenas. By default every request thread gets its own
  arena, and each keeps the freed activations of the calls it ran: resident
  memory then creeps up under many clients (tests/stress/serving_load.py: 1.65
  to 2.16 GiB in 60 s with 32 clients; flat with the cap). No-op elsewhere."""
  try:
    ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)
  except (OSError, AttributeError):
    pass


def cmd_serve(args) -> int:
  stop = queue.SimpleQueue()  # Its put() is safe in a signal handler.
  for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, lambda received, _: stop.put(received))
  if bool(args.model_config_file) == bool(args.model_base_path):
    raise CodecError("give either --model_base_path or --model_config_file")
  if args.max_concurrent_runs < 1:
    raise CodecError("--max_concurrent_runs must be at least 1")
  _cap_malloc_arenas()  # Before TensorFlow starts its threads.
  from tfc_codecs.serving import grpc_service, model_store, rest  # pylint: disable=import-outside-toplevel
  if args.model_config_file:
    configs = model_store.read_config_file(args.model_config_file)
  else:
    configs = [model_store.ModelConfig(args.model_name,
                                       os.path.abspath(args.model_base_path))]
  store = model_store.ModelStore(configs, args.poll_seconds, args.max_concurrent_runs)
  store.start()
  try:
    rest_server, rest_port = rest.start(store, args.host, args.rest_api_port)
  except OSError as e:
    raise CodecError(f"cannot listen on {args.host}:{args.rest_api_port} for REST: "
                     f"{e.strerror or e}") from None
  try:
    grpc_server, grpc_port = grpc_service.start(store, args.host, args.port)
  except RuntimeError as e:
    raise CodecError(f"cannot listen on {args.host}:{args.port} for gRPC: {e}") from None
  print(f"REST on {args.host}:{rest_port}", flush=True)  # What `start_server` reads.
  print(f"gRPC on {args.host}:{grpc_port}", flush=True)
  received = stop.get()
  model_store.log(f"{signal.Signals(received).name}: finishing requests in flight")
  stopped = grpc_server.stop(GRACE_SECONDS)
  rest_server.close(GRACE_SECONDS)
  stopped.wait()
  store.stop()
  return 0


def start_server(serve_flags: Sequence[str], timeout: float = 300.,
                 **popen_args) -> Tuple[subprocess.Popen, Dict[str, str]]:
  """Runs `tfc_codecs serve SERVE_FLAGS` in a subprocess (with `--port 0
  --rest_api_port 0` it picks free ports) and waits until it listens.
  Returns the process and its addresses {"REST": host:port, "gRPC": ...}.
  Raises CodecError if it exits or does not listen within `timeout` s."""
  process = subprocess.Popen(
      [sys.executable, "-m", "tfc_codecs.cli", "serve", *map(str, serve_flags)],
      stdout=subprocess.PIPE, text=True, **popen_args)
  lines = queue.SimpleQueue()
  threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put("")],
                   daemon=True).start()
  addresses = {}
  while len(addresses) < 2:
    try:
      line = lines.get(timeout=timeout)
    except queue.Empty:
      line = ""
    if not line:
      process.kill()
      raise CodecError(f"the server did not start (exit code {process.wait()})")
    protocol, _, address = line.strip().partition(" on ")
    addresses[protocol] = address
  return process, addresses


def _check_server(server: str) -> None:
  if not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):\d+", server):
    raise CodecError(f"--server must be HOST:PORT, not {server!r}")


def _run_client(args, input_name: str, output_name: str, suffix: str, extra) -> int:
  """Sends each input's bytes to the server; writes the output bytes next to it."""
  from tfc_codecs import command_files, fileio, images  # pylint: disable=import-outside-toplevel
  from tfc_codecs.serving import client  # pylint: disable=import-outside-toplevel
  _check_server(args.server)
  outputs = command_files.output_paths(args.inputs, args.output, suffix)
  for target in outputs:
    fileio.check_writable(target, args.overwrite)
  served = client.Client(args.server, args.model_name, args.model_version, args.grpc)

  def work(source, target):
    result = served.predict(args.signature_name,
                            {input_name: images.read_bytes(source), **extra}, output_name)
    fileio.atomic_write(target, result, args.overwrite)

  try:
    return command_files.run_each(args.inputs, outputs, work)
  finally:
    served.close()


def cmd_client_compress(args) -> int:
  extra = {"quality": args.quality} if args.quality is not None else {}
  if args.signature_name is None:  # serving_default takes no quality (docs/serving.md).
    args.signature_name = "compress" if extra else "serving_default"
  return _run_client(args, "image_bytes", "bitstream_bytes", ".tfci", extra)


def cmd_client_decompress(args) -> int:
  return _run_client(args, "bitstream_bytes", "png_bytes", ".png", {})


def add_parsers(subparsers) -> None:
  """Adds `serve` and `client` to the CLI's sub-command parsers."""
  p = subparsers.add_parser(
      "serve", help="Serve exported models over TF Serving's REST and gRPC APIs.",
      description="Serves SavedModels written by `tfc_codecs export` "
      "(MODEL_BASE_PATH/<version>/) with tensorflow_model_server's REST and gRPC "
      "APIs. Every version is loaded; new versions are picked up by polling. "
      "SIGTERM or SIGINT finish the requests in flight and exit.")
  p.add_argument("--model_base_path", help="Base path of one model's versions.")
  p.add_argument("--model_name", default="default",
                 help="Name of the --model_base_path model (default: default).")
  p.add_argument("--model_config_file",
                 help="ModelServerConfig text proto listing several models "
                 "(e.g. EXPORT_BASE/models.config, written by `tfc_codecs export`).")
  p.add_argument("--port", type=int, default=8500, help="gRPC port (0: any free port).")
  p.add_argument("--rest_api_port", type=int, default=8501,
                 help="REST port (0: any free port).")
  p.add_argument("--host", default="127.0.0.1",
                 help="Address to listen on (0.0.0.0: every interface).")
  p.add_argument("--poll_seconds", "--file_system_poll_wait_seconds", type=float,
                 default=2., help="Seconds between looks for new versions "
                 "(0: only at start-up).")
  p.add_argument("--max_concurrent_runs", type=int, default=2,
                 help="Model calls running at once (others queue): bounds memory; "
                 "each call already uses every core.")
  p.set_defaults(handler=cmd_serve)

  p = subparsers.add_parser(
      "client", help="Compress or decompress files with a `tfc_codecs serve` server.",
      description="Sends files to a served model (REST, or gRPC with --grpc) and "
      "writes the results as `tfc_codecs compress/decompress` would.")
  actions = p.add_subparsers(title="actions", dest="action", required=True)
  for action, inputs, signature, suffix, handler in (
      ("compress", "Image files (PNG or JPEG).", None, ".tfci",
       cmd_client_compress),
      ("decompress", ".tfci files.", "decompress", ".png", cmd_client_decompress)):
    a = actions.add_parser(action, help=f"{action.capitalize()} files on the server.")
    a.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs)
    a.add_argument("--server", required=True,
                   help="HOST:PORT of the server's REST API (gRPC API with --grpc).")
    a.add_argument("--grpc", action="store_true", help="Use the gRPC API.")
    a.add_argument("--model_name", required=True, help="Served model name.")
    a.add_argument("--model_version", type=int, help="Version (default: the newest).")
    a.add_argument("--signature_name", default=signature, help="Signature to run (default: "
                   f"{signature or 'serving_default; compress with --quality'}).")
    if action == "compress":
      a.add_argument("--quality", type=int, help="Quality of a variable-rate model.")
    a.add_argument("--output", help=f"Output file (one input) or directory "
                   f"(default: INPUT{suffix}).")
    a.add_argument("--overwrite", action="store_true", help="Replace existing outputs.")
    a.set_defaults(handler=handler)
