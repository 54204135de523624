"""Decode a folder of .tfci files inside a tf.data pipeline feeding a Keras model.

    python examples/decode_tfci_dataset.py EXPORT_DIR TFCI_FOLDER

EXPORT_DIR is a `tfc_codecs export` version directory. Only TensorFlow is
needed: not tfc_codecs, and not tensorflow_compression (the default exports
entropy code in stock ops; an `--ops tfc` export needs
`import tensorflow_compression` first, for its range-coder ops).
Prints one line per file: name, decoded size and the model's output.
"""

import sys

import tensorflow as tf


def main(export_dir: str, folder: str) -> None:
  codec = tf.saved_model.load(export_dir)

  def decode(path):
    image = codec.decompress_image(tf.io.read_file(path)[None])["image"][0]
    return path, tf.shape(image)[:2], tf.image.resize(tf.cast(image, tf.float32) / 255., [64, 64])

  files = tf.data.Dataset.list_files(f"{folder}/*.tfci", shuffle=False)
  dataset = files.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(4).prefetch(1)
  classifier = tf.keras.Sequential([
      tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
      tf.keras.layers.GlobalAveragePooling2D(),
      tf.keras.layers.Dense(3, activation="softmax")])
  for paths, sizes, batch in dataset:
    scores = classifier(batch)
    for path, size, score in zip(paths.numpy(), sizes.numpy(), scores.numpy()):
      print(f"{path.decode()} {size[0]}x{size[1]} {' '.join(f'{s:.3f}' for s in score)}")


if __name__ == "__main__":
  main(*sys.argv[1:3])
