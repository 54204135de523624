"""Training data: random crops from local image files or a TFDS dataset.

Images are decoded in parallel, randomly downscaled (which also washes out
JPEG artifacts of the source), randomly cropped and flipped, batched and
prefetched. Works offline: a TFDS dataset must already be built in a TFDS data
directory (nothing is downloaded).
"""

import contextlib
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf
from absl import logging as absl_logging

from tfc_codecs import images
from tfc_codecs.errors import CodecError

TFDS_SPLIT = "train"  # The split and image feature of a TFDS dataset trained on by default.
TFDS_IMAGE_KEY = "image"


def _read_image(path: tf.Tensor) -> tf.Tensor:
  image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                             expand_animations=False)
  return tf.ensure_shape(image, [None, None, 3])


def random_patch(image: tf.Tensor, patch_size: int,
                 min_scale: float = 1.) -> tf.Tensor:
  """A random, randomly downscaled and flipped float patch (0..255)."""
  shape = tf.cast(tf.shape(image)[:2], tf.float32)
  smallest_scale = float(patch_size) / tf.reduce_min(shape)
  scale = tf.random.uniform([], min_scale, 1.)
  scale = tf.maximum(scale, smallest_scale)
  image = tf.cast(image, tf.float32)
  size = tf.maximum(tf.cast(tf.math.ceil(shape * scale), tf.int32), patch_size)
  image = tf.image.resize(image, size, method="area", antialias=True)
  patch = tf.image.random_crop(image, [patch_size, patch_size, 3])
  patch = tf.image.random_flip_left_right(patch)
  return tf.clip_by_value(tf.round(patch), 0., 255.)


@contextlib.contextmanager
def _tfds_notes_hidden() -> Iterator[None]:
  """Hides the INFO logs TFDS writes while it opens a dataset."""
  verbosity = absl_logging.get_verbosity()
  absl_logging.set_verbosity(min(verbosity, absl_logging.WARNING))
  try:
    yield
  finally:
    absl_logging.set_verbosity(verbosity)


def _tfds_images(name: str, data_dir: Optional[str], split: str, image_key: str,
                 seed: Optional[int]) -> tf.data.Dataset:
  """The uint8 RGB images of feature `image_key` of a split of a built TFDS
  dataset (grayscale ones made RGB)."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  where = f" in {data_dir}" if data_dir else ""
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except  # TFDS raises many types for a bad name.
    raise CodecError(f"no TFDS dataset {name!r}{where} "
                     f"({str(e).strip().splitlines()[0]})") from None
  if not builder.is_prepared():
    raise CodecError(f"TFDS dataset {name!r} is not built{where} (training never downloads: "
                     "build it first, e.g. `tfds build`, or give --tfds_data_dir)")
  features = builder.info.features
  if image_key not in features.keys():
    raise CodecError(f"TFDS dataset {name!r} has no feature {image_key!r} (it has "
                     f"{', '.join(sorted(features.keys()))}); choose one with --tfds_image_key")
  feature = features[image_key]
  if (not isinstance(feature, tfds.features.Image) or feature.np_dtype != np.uint8
      or feature.shape[-1] not in (1, 3)):
    raise CodecError(f"feature {image_key!r} of TFDS dataset {name!r} is not an 8-bit RGB "
                     f"or grayscale image ({type(feature).__name__}, shape {feature.shape}, "
                     f"{np.dtype(feature.np_dtype).name})")
  try:
    dataset = builder.as_dataset(split=split, shuffle_files=True,
                                 read_config=tfds.ReadConfig(shuffle_seed=seed))
  except (ValueError, KeyError) as e:
    raise CodecError(f"TFDS dataset {name!r} has no split {split!r} (it has "
                     f"{', '.join(sorted(builder.info.splits))}; "
                     f"{str(e).strip().splitlines()[0]})") from None
  if feature.shape[-1] == 1:
    return dataset.map(lambda example: tf.image.grayscale_to_rgb(example[image_key]))
  return dataset.map(lambda example: example[image_key])


def training_dataset(patch_size: int, batch_size: int,
                     train_glob: Optional[str] = None,
                     tfds_dataset: Optional[str] = None,
                     tfds_data_dir: Optional[str] = None,
                     tfds_split: str = TFDS_SPLIT,
                     tfds_image_key: str = TFDS_IMAGE_KEY,
                     min_scale: float = 1.,
                     seed: Optional[int] = None) -> tf.data.Dataset:
  """An endless dataset of [batch_size, patch_size, patch_size, 3] floats."""
  if (train_glob is None) == (tfds_dataset is None):
    raise CodecError("give exactly one of --train_glob and --tfds_dataset")
  if train_glob is not None:
    if tfds_data_dir is not None or (tfds_split, tfds_image_key) != (TFDS_SPLIT, TFDS_IMAGE_KEY):
      raise CodecError("--tfds_data_dir, --tfds_split and --tfds_image_key apply to "
                       "--tfds_dataset, not --train_glob")
    files = images.list_images(train_glob)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    dataset = dataset.map(_read_image, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.ignore_errors(log_warning=True)  # Skip unreadable files.
  else:
    with _tfds_notes_hidden():
      dataset = _tfds_images(tfds_dataset, tfds_data_dir, tfds_split, tfds_image_key,
                             seed).repeat()
  dataset = dataset.map(
      lambda image: random_patch(image, patch_size, min_scale),
      num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
