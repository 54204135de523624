"""Runs in the plain install's virtual environment (newest TensorFlow, no
tensorflow-compression): tests/test_plain_install.py starts it and checks its
outputs against the TFC stack's.

    python checks.py IMAGE OUT_DIR

For every shipped model family: compresses IMAGE at the default quality
through `tfc_codecs.load` and `tfc_codecs.compress`, decodes the file through
`tfc_codecs.decompress`, and writes OUT_DIR/<family>.tfci and .npy. Exports
the default model (`tfc_codecs export`: the shipped stock export), loads the
export, serves it with `tfc_codecs serve` and compresses IMAGE over REST and gRPC
(OUT_DIR/served-rest.tfci, served-grpc.tfci). Prints one JSON line: versions,
load/compress/decompress seconds per family, and whether
tensorflow_compression was imported.
"""

import importlib.metadata
import json
import os
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

import tfc_codecs
from tfc_codecs import images, zoo
from tfc_codecs.serving import client, commands


def main(image_path: str, out_dir: str) -> None:
  image, _ = images.read_image(image_path)
  report = {"tensorflow": tf.__version__, "numpy": np.__version__,
            "keras": importlib.metadata.version("keras"),
            "python": sys.version.split()[0], "models": {}}
  for family in zoo.family_names():
    start = time.perf_counter()
    codec = tfc_codecs.load(family)
    loaded = time.perf_counter()
    data = codec.compress(image)
    compressed = time.perf_counter()
    decoded = tfc_codecs.decompress(data)
    decompressed = time.perf_counter()
    if tfc_codecs.compress(image, family) != data:
      raise AssertionError(f"{family}: tfc_codecs.compress differs from load().compress")
    with open(os.path.join(out_dir, f"{family}.tfci"), "wb") as f:
      f.write(data)
    np.save(os.path.join(out_dir, f"{family}.npy"), decoded)
    report["models"][family] = dict(ops=codec.ops, load_s=loaded - start,
                                    compress_s=compressed - loaded,
                                    decompress_s=decompressed - compressed)

  export_base = os.path.join(out_dir, "exports")
  subprocess.run([os.path.join(os.path.dirname(sys.executable), "tfc_codecs"), "export",
                  "--export_base", export_base], check=True, stdout=subprocess.DEVNULL)
  exported = tfc_codecs.load(os.path.join(export_base, zoo.DEFAULT_MODEL))
  with open(os.path.join(out_dir, f"{zoo.DEFAULT_MODEL}.tfci"), "rb") as f:
    if exported.compress(image) != f.read():
      raise AssertionError("the export compresses otherwise than the shipped model")
  server, addresses = commands.start_server(
      ["--model_config_file", os.path.join(export_base, "models.config"),
       "--port", "0", "--rest_api_port", "0"], stderr=subprocess.DEVNULL)
  try:
    with open(image_path, "rb") as f:
      png = f.read()
    for protocol, use_grpc in (("rest", False), ("grpc", True)):
      served = client.Client(addresses["gRPC" if use_grpc else "REST"], zoo.DEFAULT_MODEL,
                             use_grpc=use_grpc)
      data = served.predict("serving_default", {"image_bytes": png}, "bitstream_bytes")
      served.close()
      with open(os.path.join(out_dir, f"served-{protocol}.tfci"), "wb") as f:
        f.write(data)
  finally:
    server.terminate()
    server.wait()
  report["tfc_imported"] = "tensorflow_compression" in sys.modules
  print(json.dumps(report))


if __name__ == "__main__":
  main(*sys.argv[1:])
