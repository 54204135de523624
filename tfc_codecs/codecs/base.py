"""The contract every codec keeps: uint8 images in and out, any size.

A codec (`Codec`) is a Keras model with
  * `call(x, training)` -> (reconstruction, bits): the training forward pass on
    float images (0..255) whose size is a multiple of `downsampling`;
  * `compress(image[, quality])` -> payload strings, `decompress(payloads,
    image_shape[, quality])` -> uint8 image and `reconstruct(image[, quality])`:
    `tf.function`s with fixed input signatures; `quality` is an input of
    models with `num_qualities` > 0 (for `progressive` ones, the number of
    iterations), which together decide the `contract.RateKind`;
  * `freeze()` / `entropy_tables()` / `set_entropy_tables()`: the
    entropy-coding tables, computed once after training and stored with the
    weights so that encoder and decoder always use the same integers;
    `coder`, the entropy coder built from them, is None until then.
`PaddedCodec` implements compress/decompress/reconstruct for a single-rate
codec that codes the image padded to a multiple of `downsampling`, through
`_compress_padded` and `_decompress_padded`.
"""

import abc
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf

from tfc_codecs.codecs.options import Option

IMAGE_SPEC = tf.TensorSpec([None, None, 3], tf.uint8)
PAYLOADS_SPEC = tf.TensorSpec([None], tf.string)
SHAPE_SPEC = tf.TensorSpec([2], tf.int32)


def pad_to_multiple(x: tf.Tensor, multiple: int) -> tf.Tensor:
  """Pads [B, H, W, C] at the bottom/right by repeating the edge pixels."""
  height, width = tf.shape(x)[1], tf.shape(x)[2]
  pad_h = (multiple - height % multiple) % multiple
  pad_w = (multiple - width % multiple) % multiple
  x = tf.concat([x, tf.repeat(x[:, -1:], pad_h, axis=1)], axis=1)
  return tf.concat([x, tf.repeat(x[:, :, -1:], pad_w, axis=2)], axis=2)


def psnr(mse: tf.Tensor) -> tf.Tensor:
  """PSNR in dB of an MSE on the 0..255 scale."""
  return 10. * tf.math.log(255. ** 2 / tf.maximum(mse, 1e-10)) / tf.math.log(10.)


def to_uint8(x: tf.Tensor) -> tf.Tensor:
  """Rounds a float image on the 0..255 scale to uint8 (saturating)."""
  return tf.saturate_cast(tf.round(x), tf.uint8)


class Codec(tf.keras.Model, metaclass=abc.ABCMeta):
  """Base class of all codecs; see the module docstring."""

  codec_name: str = ""
  downsampling: int = 1
  num_payloads: int = 1
  needs_lambda: bool = True  # Trained with the user's --lambda.
  distortions: Tuple[str, ...] = ("mse", "ms-ssim")  # What `training_loss` can minimise.
  num_qualities: int = 0  # Rates one model offers (compress takes a quality); 0: fixed rate.
  progressive: bool = False  # Quality = iterations; a file cut between them decodes.
  # Entropy coder, set before the tables (`model_dir.load(path, ops)`): "tfc"
  # (tensorflow-compression's range coder) or "stock" (rANS in stock TF ops).
  # Not part of the model: the fingerprint is the same, files record the coder.
  ops: str = "tfc"
  coder: Any = None  # The entropy coder, set with the tables; None until frozen.
  # Options added after models were saved: the values model.json files written
  # without them imply, so older models load as they were trained. `train
  # --init_from` does not inherit them (the new model's `carry_over` converts).
  stored_config_defaults: Dict[str, Any] = {}
  # What `tfc_codecs train` offers as flags (codecs/options.py), each class
  # declaring its own: constructor keywords, and training-time attributes.
  model_options: Tuple[Option, ...] = ()
  training_options: Tuple[Option, ...] = ()

  def __init__(self, **config):
    super().__init__(name=self.codec_name)
    self._codec_config = tuple(sorted(config.items()))

  @classmethod
  def declared_options(cls, kind: str) -> Dict[str, Option]:
    """The options of `kind` ("model_options" or "training_options") that
    this codec class and its bases declare, by name."""
    return {option.name: option for klass in reversed(cls.__mro__)
            for option in vars(klass).get(kind, ())}

  @property
  def config(self) -> Dict[str, Any]:
    """The constructor arguments of this codec (stored in model.json)."""
    return dict(self._codec_config)

  def carry_over(self, part: str, values: List[np.ndarray], source: "Codec") -> List[np.ndarray]:
    """The values of `source`'s weights of `part` (an attribute both codecs
    have) for this codec (`train --init_from`); by default unchanged."""
    del part, source
    return values

  def _build_codec(self) -> None:
    """Creates every weight by running the training pass once on a tiny image."""
    self(tf.zeros([1, self.downsampling, self.downsampling, 3]), training=True)

  # Training ---------------------------------------------------------------
  def call(self, x: tf.Tensor, training: bool = False) -> Tuple[tf.Tensor, tf.Tensor]:
    """[B, H, W, 3] float (0..255) -> (reconstruction, bits per image [B])."""
    return self._forward(x, training)

  def training_loss(self, x: tf.Tensor, lmbda: float,
                    distortion: str = "mse") -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
    """Loss = bpp + λ·D on a batch (D: MSE on 0..255, or 1 − MS-SSIM),
    with the batch's bpp, MSE and PSNR."""
    x_hat, bits = self(x, training=True)
    num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), bits.dtype)
    bpp = tf.reduce_sum(bits) / num_pixels
    mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat))
    if distortion == "ms-ssim":
      dist = 1. - tf.reduce_mean(tf.image.ssim_multiscale(
          x, tf.clip_by_value(x_hat, 0., 255.), 255.))
    else:
      dist = mse
    return bpp + lmbda * dist, dict(bpp=bpp, mse=mse, psnr=psnr(mse))

  @abc.abstractmethod
  def _forward(self, x, training):
    """Reconstruction and bits of a padded float batch."""

  # Range-coding tables ----------------------------------------------------
  @abc.abstractmethod
  def freeze(self) -> None:
    """Computes the range-coding tables from the trained priors."""

  @abc.abstractmethod
  def entropy_tables(self) -> Dict[str, np.ndarray]:
    """The frozen tables, to be stored next to the weights."""

  @abc.abstractmethod
  def set_entropy_tables(self, tables: Dict[str, np.ndarray]) -> None:
    """Restores frozen tables written by `entropy_tables`."""

  # Compression ------------------------------------------------------------
  @abc.abstractmethod
  def compress(self, image: tf.Tensor, *quality: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] (at a quality, if the model takes one) -> payload strings."""

  @abc.abstractmethod
  def decompress(self, payloads: tf.Tensor, image_shape: tf.Tensor,
                 *quality: tf.Tensor) -> tf.Tensor:
    """Payload strings + (height, width) (+ quality) -> uint8 [height, width, 3]."""

  @abc.abstractmethod
  def reconstruct(self, image: tf.Tensor, *quality: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """The model's own quantized reconstruction and estimated bits, no coder."""


class PaddedCodec(Codec):
  """A single-rate codec coding the image padded to `downsampling`'s multiple."""

  @tf.function(input_signature=[IMAGE_SPEC])
  def compress(self, image: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 3] -> payload strings [num_payloads]."""
    return self._compress_padded(pad_to_multiple(image[None], self.downsampling))

  @tf.function(input_signature=[PAYLOADS_SPEC, SHAPE_SPEC])
  def decompress(self, payloads: tf.Tensor, image_shape: tf.Tensor) -> tf.Tensor:
    """Payload strings + (height, width) -> uint8 [height, width, 3]."""
    padded_shape = -(-image_shape // self.downsampling) * self.downsampling
    image = self._decompress_padded(payloads, padded_shape)
    return image[0, :image_shape[0], :image_shape[1]]

  @tf.function(input_signature=[IMAGE_SPEC])
  def reconstruct(self, image: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """The model's own quantized reconstruction and estimated bits, no coder."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    x = pad_to_multiple(tf.cast(image, tf.float32)[None], self.downsampling)
    x_hat, bits = self(x, training=False)
    return to_uint8(x_hat[0, :height, :width]), bits[0]

  @abc.abstractmethod
  def _compress_padded(self, x):
    """[1, H, W, 3] uint8, H and W multiples of `downsampling` -> strings."""

  @abc.abstractmethod
  def _decompress_padded(self, payloads, padded_shape):
    """Strings -> [1, H, W, 3] uint8 reconstruction of the padded image."""
