"""Does storing weights as float16 cost quality? Compares a run's float32
checkpoint with its shipped float16 model on a folder of images.

    python benchmarks/float16_check.py --train_dir RUN --model ZOO_MODEL_DIR

Both are frozen the same way (tables from their own weights) and run through
the real compress/decompress path; writes benchmarks/results/float16_check.json.
"""

import argparse
import json
import os
import sys

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tfc_codecs import api, images, registry  # pylint: disable=wrong-import-position
from tfc_codecs.evaluation import metrics  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--train_dir", required=True)
  parser.add_argument("--model", required=True)
  parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "kodak"))
  args = parser.parse_args()
  shipped = api.load(args.model)
  with open(os.path.join(args.train_dir, "train_config.json")) as f:
    config = json.load(f)
  net32 = registry.codec_class(config["model_type"])(**config["model_config"])
  tf.train.Checkpoint(model=net32).read(
      tf.train.latest_checkpoint(os.path.join(args.train_dir, "checkpoints"))).expect_partial()
  net32.freeze()
  rows = {"float32": [], "float16": []}
  for path in images.list_images(args.data):
    image, _ = images.read_image(path)
    pixels = image.shape[0] * image.shape[1]
    payloads = net32.compress(tf.constant(image))
    decoded = net32.decompress(payloads, tf.constant(image.shape[:2], tf.int32)).numpy()
    rows["float32"].append((8 * sum(len(p) for p in payloads.numpy()) / pixels,
                            metrics.psnr(image, decoded)))
    data = shipped.compress(image)
    stream = shipped.parse(data)
    rows["float16"].append((8 * sum(len(p) for p in stream.payloads) / pixels,
                            metrics.psnr(image, shipped.decompress(data))))
  result = {k: {"payload_bpp": float(np.mean([r[0] for r in v])),
                "psnr-rgb": float(np.mean([r[1] for r in v]))} for k, v in rows.items()}
  result["images"] = len(rows["float32"])
  with open(os.path.join(ROOT, "benchmarks", "results", "float16_check.json"), "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
