"""Does storing weights as float16 cost quality? Compares a run's float32
checkpoint with its shipped float16 model on a folder of images.

    python -m experiments.float16_check --train_dir RUN --model ZOO_MODEL_DIR [--quality Q]

Both are frozen the same way (tables from their own weights) and run through
the real compress/decompress path at quality Q (the model's default; for rnn
the number of iterations); writes experiments/results/float16_check-<codec>.json.
"""

import argparse
import json
import os
import sys

import numpy as np
import tensorflow as tf

from benchmarks.common import KODAK, ROOT, write_json

from tfc_codecs import api, images, registry  # pylint: disable=wrong-import-position
from tfc_codecs.evaluation import metrics  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--train_dir", required=True)
  parser.add_argument("--model", required=True)
  parser.add_argument("--quality", type=int)
  parser.add_argument("--data", default=KODAK)
  args = parser.parse_args()
  shipped = api.load(args.model)
  with open(os.path.join(args.train_dir, "train_config.json")) as f:
    config = json.load(f)
  net32 = registry.codec_class(config["model_type"])(**config["model_config"])
  checkpoint = tf.train.latest_checkpoint(os.path.join(args.train_dir, "checkpoints"))
  tf.train.Checkpoint(model=net32).read(checkpoint).expect_partial()
  net32.freeze()
  codecs = {"float16": shipped,  # The float32 net, with the shipped model's meta.
            "float32": api.ImageCodec(net32, shipped.meta, checkpoint, shipped.quality)}
  quality = args.quality or (shipped.net.default_quality if shipped.num_qualities else None)
  rows = {name: [] for name in codecs}
  for path in images.list_images(args.data):
    image, _ = images.read_image(path)
    for name, codec in codecs.items():
      data = codec.compress(image, quality)
      payload_bits = 8 * sum(len(p) for p in codec.parse(data).payloads)
      rows[name].append((payload_bits / (image.shape[0] * image.shape[1]),
                         metrics.psnr(image, codec.decompress(data))))
  result = {k: {"payload_bpp": float(np.mean([r[0] for r in v])),
                "psnr-rgb": float(np.mean([r[1] for r in v]))} for k, v in rows.items()}
  result.update(images=len(rows["float32"]), quality=quality, checkpoint=checkpoint,
                command="python -m experiments.float16_check " + " ".join(sys.argv[1:]))
  output = os.path.join(ROOT, "experiments", "results",
                        f"float16_check-{shipped.codec_name}.json")
  write_json(output, result)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
