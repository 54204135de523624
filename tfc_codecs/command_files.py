"""What the file-processing commands share (`compress`, `decompress`, `info`
in cli.py; `client compress/decompress` in serving/commands.py): output names,
the per-file loop and its one-line error reports."""

import concurrent.futures
import gc
import os
import sys
import time
from typing import Callable, List, Optional, Sequence

from tfc_codecs.errors import CodecError

PROG = "tfc_codecs"


def print_error(message: str) -> None:
  """Prints `tfc_codecs: error: MESSAGE` to stderr."""
  print(f"{PROG}: error: {message}", file=sys.stderr)


def output_paths(inputs: Sequence[str], output: Optional[str], suffix: str) -> List[str]:
  """Output path per input: INPUT+suffix, --output for one input, or a folder."""
  if output and len(inputs) > 1:
    if not os.path.isdir(output):
      raise CodecError("--output must be a directory when several inputs are given")
    return [os.path.join(output, os.path.basename(i) + suffix) for i in inputs]
  if output and os.path.isdir(output):
    return [os.path.join(output, os.path.basename(inputs[0]) + suffix)]
  return [output] if output else [i + suffix for i in inputs]


def run_each(inputs: Sequence[str], outputs: Sequence[str], work: Callable,
             workers: int = 1, throughput: bool = False) -> int:
  """Runs work(input, output) for each pair, `workers` pairs at a time in
  threads (TensorFlow, image decoding and file I/O release the GIL, so one
  image's reading, entropy coding and writing overlap another's transforms).
  `work` may return (stream, line) pairs to print; they and errors are
  reported in input order, then, with `throughput` and several inputs, the
  images per second. Returns 1 if any pair failed, else 0.

  Freezes the objects alive so far (TensorFlow's, the model's) out of garbage
  collection and turns collection on: the CLI starts with it off (cli.run)."""
  gc.freeze()
  gc.enable()
  start = time.perf_counter()
  failures = 0
  with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
    futures = [pool.submit(work, source, target) for source, target in zip(inputs, outputs)]
    for source, future in zip(inputs, futures):
      try:
        for stream, line in future.result() or ():
          print(line, file=stream)
      except CodecError as e:
        print_error(str(e) if str(e).startswith(source) else f"{source}: {e}")
        failures += 1
  if throughput and len(inputs) > 1:
    seconds = time.perf_counter() - start
    print(f"{len(inputs) - failures} of {len(inputs)} images in {seconds:.2f} s "
          f"({(len(inputs) - failures) / seconds:.2f} images/s)")
  return 1 if failures else 0
