"""Variable rate for a transform codec: gain units on the latents.

> "Asymmetric Gained Deep Image Compression With Continuous Rate Adaptation"
> Z. Cui, J. Wang, S. Gao, T. Guo, Y. Feng, B. Bai. CVPR 2021.
> https://arxiv.org/abs/2003.02012

For each quality q a learned per-channel gain g_q scales the latents before
quantization and an inverse gain undoes it before synthesis:
y_q = g_q · g_a(x), x̂ = g_s(ŷ_q · g'_q). A larger gain quantizes more finely.
Training samples one quality per image and weights its distortion by that
quality's λ, so one training run yields every rate point. The quality index is
recorded in the `.tfci` header. Mixed in before a `TransformCodec`:
`class X(VariableRate, SomeTransformCodec)`.
"""

from typing import Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfc_codecs.codecs.base import IMAGE_SPEC, PAYLOADS_SPEC, SHAPE_SPEC, pad_to_multiple, psnr, to_uint8
from tfc_codecs.codecs.options import Option, float_list
from tfc_codecs.errors import CodecError

QUALITY_SPEC = tf.TensorSpec([], tf.int32)
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932)


class VariableRate:
  """Qualities 1..len(lambdas) (ascending λ, on the 0..255 MSE scale); the
  default quality is the one whose λ is nearest `reference_lambda`."""

  needs_lambda = False
  distortions = ("mse",)
  model_options = (
      Option("lambdas", "Ascending comma-separated lambdas, one per quality (default "
             + ",".join(str(l) for l in DEFAULT_LAMBDAS) + ").", float_list),)

  def __init__(self, *args, lambdas: Sequence[float] = DEFAULT_LAMBDAS,
               reference_lambda: float = 0.0067, default_quality: int = 0, **config):
    lambdas = tuple(float(l) for l in lambdas)
    if not lambdas or list(lambdas) != sorted(lambdas) or lambdas[0] <= 0:
      raise CodecError(f"{self.codec_name}: lambdas must be positive and ascending")
    if not default_quality:  # The quality nearest to the reference λ.
      default_quality = 1 + int(np.argmin(np.abs(np.log(np.asarray(lambdas) / reference_lambda))))
    if not 1 <= default_quality <= len(lambdas):
      raise CodecError(f"{self.codec_name}: default_quality must be in 1..{len(lambdas)}")
    super().__init__(*args, lambdas=lambdas, reference_lambda=float(reference_lambda),
                     default_quality=int(default_quality), **config)

  def _build_codec(self) -> None:
    # High-rate theory: step size ∝ λ^(-1/2), so gains start at sqrt(λ/λ_ref).
    config = self.config
    log_gains = 0.5 * np.log(np.asarray(config["lambdas"]) / config["reference_lambda"])
    log_gains = np.repeat(log_gains[:, None], config["latent_filters"], 1)
    self.log_gain = self.add_weight(
        name="log_gain", shape=log_gains.shape,
        initializer=tf.constant_initializer(log_gains))
    self.log_inverse_gain = self.add_weight(
        name="log_inverse_gain", shape=log_gains.shape,
        initializer=tf.constant_initializer(-log_gains))
    super()._build_codec()

  GAIN_PARTS = {"log_gain": 1., "log_inverse_gain": -1.}  # Sign of the λ^(1/2) law.

  def carry_over(self, part, values, source):
    """Gains of a source with other λ values are resampled to this codec's."""
    if part in self.GAIN_PARTS and source.lambdas != self.lambdas:
      return [self.resampled_gains(part, values[0], source.lambdas, self.lambdas)]
    return super().carry_over(part, values, source)

  @staticmethod
  def nearest_qualities(source_lambdas: Sequence[float], lambdas: Sequence[float]) -> np.ndarray:
    """0-based index of the source quality nearest in log λ to each of `lambdas`."""
    distance = np.log(np.asarray(lambdas))[:, None] - np.log(np.asarray(source_lambdas))[None]
    return np.argmin(np.abs(distance), axis=1)

  @classmethod
  def resampled_gains(cls, part: str, log_gains: np.ndarray, source_lambdas: Sequence[float],
                      lambdas: Sequence[float]) -> np.ndarray:
    """Gains [len(source_lambdas), M] carried over to other qualities: linear
    in log λ between source qualities, the ±½·log λ law beyond them."""
    sign = cls.GAIN_PARTS[part]
    source = np.log(np.asarray(source_lambdas))
    rows = []
    for target in np.log(np.asarray(lambdas)):
      nearest = min(max(target, source[0]), source[-1])
      row = np.stack([np.interp(nearest, source, column) for column in log_gains.T])
      rows.append(row + sign * 0.5 * (target - nearest))
    return np.stack(rows).astype(log_gains.dtype)

  @property
  def lambdas(self) -> Tuple[float, ...]:
    return tuple(self.config["lambdas"])

  @property
  def num_qualities(self) -> int:
    return len(self.lambdas)

  @property
  def default_quality(self) -> int:
    return self.config["default_quality"]

  def _gains(self, quality_index):
    """Gain and inverse gain of 0-based quality indexes [B] -> [B, 1, 1, M]."""
    gain = tf.exp(tf.gather(self.log_gain, quality_index))[:, None, None, :]
    inverse = tf.exp(tf.gather(self.log_inverse_gain, quality_index))[:, None, None, :]
    return gain, inverse

  # Entropy coding at a quality: the transform codec's, unless a subclass
  # conditions its entropy model on the quality too.
  def _latent_bits_at(self, y, quality_index, training):
    del quality_index
    return self._latent_bits(y, training)

  def _encode_latents_at(self, y, quality_index):
    del quality_index
    return self._encode_latents(y)

  def _decode_latents_at(self, payloads, padded_shape, quality_index):
    del quality_index
    return self._decode_latents(payloads, padded_shape)

  def _forward_at(self, x, quality_index, training):
    gain, inverse = self._gains(quality_index)
    y = self.analysis(x) * gain
    y_hat, bits = self._latent_bits_at(y, quality_index, training)
    return self._synthesized(y_hat * inverse, training), bits

  def _forward(self, x, training):
    """At the default quality (used to build the model and by `reconstruct`)."""
    index = tf.fill([tf.shape(x)[0]], self.default_quality - 1)
    return self._forward_at(x, index, training)

  def training_loss(self, x, lmbda=None, distortion="mse"):
    """Mean over the batch of bpp + λ_q · MSE, one random quality q per image."""
    del lmbda  # Each quality has its own λ.
    if distortion != "mse":
      raise ValueError(f"{self.codec_name} trains with MSE only")
    index = tf.random.uniform([tf.shape(x)[0]], 0, self.num_qualities, tf.int32)
    x_hat, bits = self._forward_at(x, index, training=True)
    bpp = bits / tf.cast(tf.reduce_prod(tf.shape(x)[1:3]), bits.dtype)
    mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat), axis=[1, 2, 3])
    loss = tf.reduce_mean(bpp + tf.gather(tf.constant(self.lambdas), index) * mse)
    mean_mse = tf.reduce_mean(mse)
    return loss, dict(bpp=tf.reduce_mean(bpp), mse=mean_mse, psnr=psnr(mean_mse))

  # Compression ------------------------------------------------------------
  def _check_quality(self, quality):
    """0-based index [1] of a quality, once checked (the checks run first)."""
    checks = [tf.debugging.assert_greater_equal(quality, 1, message="quality out of range"),
              tf.debugging.assert_less_equal(quality, self.num_qualities,
                                             message="quality out of range")]
    with tf.control_dependencies(checks):
      return tf.reshape(quality - 1, [1])

  @tf.function(input_signature=[IMAGE_SPEC, QUALITY_SPEC])
  def compress(self, image, quality):
    """uint8 [H, W, 3] at quality 1..num_qualities -> payload strings."""
    index = self._check_quality(quality)
    gain, _ = self._gains(index)
    return self._encode_latents_at(
        self.analyze(pad_to_multiple(image[None], self.downsampling)) * gain, index)

  @tf.function(input_signature=[PAYLOADS_SPEC, SHAPE_SPEC, QUALITY_SPEC])
  def decompress(self, payloads, image_shape, quality):
    """Payload strings + (height, width) + quality -> uint8 image."""
    index = self._check_quality(quality)
    _, inverse = self._gains(index)
    padded_shape = -(-image_shape // self.downsampling) * self.downsampling
    y_hat = self._decode_latents_at(payloads, padded_shape, index)
    return self.synthesize(y_hat * inverse)[0, :image_shape[0], :image_shape[1]]

  @tf.function(input_signature=[IMAGE_SPEC, QUALITY_SPEC])
  def reconstruct(self, image, quality):
    """The model's own quantized reconstruction and estimated bits at `quality`."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    x = pad_to_multiple(tf.cast(image, tf.float32)[None], self.downsampling)
    x_hat, bits = self._forward_at(x, self._check_quality(quality), training=False)
    return to_uint8(x_hat[0, :height, :width]), bits[0]
