"""Wrap an exported codec's `decompress` as a Keras layer.

    python examples/keras_decompress_layer.py EXPORT_DIR FILE.tfci

The layer takes `.tfci` bytes (string [1]) and returns the decoded image as
float [1, H, W, 3] in 0..1, so a Keras model can start from compressed files.
Prints the decoded size and the mean of each channel. Plain TensorFlow runs a
default (stock-ops) export; an `--ops tfc` export needs
`import tensorflow_compression` first.
"""

import sys

import tensorflow as tf


class Decompress(tf.keras.layers.Layer):
  """`.tfci` bytes [1] -> float image [1, H, W, 3] in 0..1."""

  def __init__(self, export_dir: str, **kwargs):
    super().__init__(trainable=False, **kwargs)
    self.codec = tf.saved_model.load(export_dir)

  def call(self, bitstream_bytes):
    image = self.codec.decompress_image(bitstream_bytes)["image"]
    return tf.cast(image, tf.float32) / 255.


def main(export_dir: str, path: str) -> None:
  bitstream = tf.keras.Input(shape=(), batch_size=1, dtype=tf.string)
  image = Decompress(export_dir)(bitstream)
  channel_means = tf.keras.layers.GlobalAveragePooling2D()(image)
  model = tf.keras.Model(bitstream, [image, channel_means])
  with open(path, "rb") as f:
    decoded, means = model(tf.constant([f.read()]))
  print(f"{decoded.shape[1]}x{decoded.shape[2]} " + " ".join(f"{m:.4f}" for m in means.numpy()[0]))


if __name__ == "__main__":
  main(*sys.argv[1:3])
