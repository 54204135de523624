"""Training data: random crops from local image files or a TFDS dataset.

Images are decoded in parallel, randomly downscaled (which also washes out
JPEG artifacts of the source), randomly cropped and flipped, batched and
prefetched. Works offline on local folders; TFDS datasets must already be in
the local TFDS data directory.
"""

from typing import Optional

import tensorflow as tf

from tfc_codecs import images
from tfc_codecs.errors import CodecError


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


def training_dataset(patch_size: int, batch_size: int,
                     train_glob: Optional[str] = None,
                     tfds_dataset: Optional[str] = None,
                     min_scale: float = 1.,
                     seed: Optional[int] = None) -> tf.data.Dataset:
  """An endless dataset of [batch_size, patch_size, patch_size, 3] floats."""
  if (train_glob is None) == (tfds_dataset is None):
    raise CodecError("give exactly one of --train_glob and --tfds_dataset")
  if train_glob is not None:
    files = images.list_images(train_glob)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat()
    dataset = dataset.map(_read_image, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.ignore_errors(log_warning=True)  # Skip unreadable files.
  else:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    try:
      dataset = tfds.load(tfds_dataset, split="train", shuffle_files=True,
                          download=False)
    except Exception as e:  # TFDS raises many types; all mean "not available".
      raise CodecError(
          f"TFDS dataset {tfds_dataset!r} is not available locally: "
          f"{str(e).splitlines()[0]}") from None
    dataset = dataset.repeat().map(lambda x: x["image"])
  dataset = dataset.map(
      lambda image: random_patch(image, patch_size, min_scale),
      num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
