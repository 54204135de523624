"""Top-left crops of the first BSDS500 training photos, for the experiments
that probe a model's latents on training data (never Kodak)."""

import glob
import os
from typing import List, Tuple

import numpy as np
import tensorflow as tf

from benchmarks.common import BSDS500
from tfc_codecs import images

DEFAULT_DATA = BSDS500


def training_crops(data: str, count: int, size: int) -> Tuple[List[str], tf.Tensor]:
  """The first `count` photos of `data` (sorted) and their top-left
  size x size crops as float [count, size, size, 3]."""
  files = sorted(glob.glob(os.path.join(data, "*.jpg")))[:count]
  return files, tf.constant(
      np.stack([images.read_image(f)[0][:size, :size] for f in files]), tf.float32)


def crop_latents(net, data: str, count: int, size: int) -> Tuple[List[str], tf.Tensor, int]:
  """The photos, `net`'s analysis latents of their crops (as `training_crops`),
  and the number of pixels those crops hold."""
  files, x = training_crops(data, count, size)
  return files, net.analysis(x), int(np.prod(x.shape[:3]))
