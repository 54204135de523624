"""The entropy models of the Ballé codecs, in their training and frozen forms.

Training uses tensorflow-compression's noisy entropy models (uniform noise as
the quantization proxy). For coding, the integer range-coding tables are
computed once (`*_tables`) and stored with the weights; coders are rebuilt
from those stored integers, so encoder and decoder never recompute them, and
code with `range_coder.RangeCoder` (TFC's range coder with a bounded escape
section instead of TFC's overflow loop; `ops="tfc"`) or with
`stock_coder.StockCoder` (rANS in stock TensorFlow ops, same tables;
`ops="stock"`), chosen when a model is loaded (`make_coder`).
Quantization is plain rounding (no offset heuristic), so the model's own
quantized forward pass and the range-coded path see identical latents.
"""

from typing import Dict, Optional, Union

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_codecs.entropy_coding.range_coder import RangeCoder
from tfc_codecs.entropy_coding.stock_coder import StockCoder

OPS = ("tfc", "stock")  # Entropy coder: TFC's range-coder ops, or stock-op rANS.

SCALE_MIN = 0.11
SCALE_MAX = 256.
NUM_SCALES = 64


def make_coder(ops: str, cdf: np.ndarray, cdf_offset: Optional[np.ndarray] = None
               ) -> Union[RangeCoder, StockCoder]:
  """The entropy coder of `ops` ("tfc" or "stock") for stored tables."""
  if ops not in OPS:
    raise ValueError(f"ops must be one of {OPS}, not {ops!r}")
  return (RangeCoder if ops == "tfc" else StockCoder)(cdf, cdf_offset)


def factorized_prior(channels: int) -> tfc.NoisyDeepFactorized:
  """A learned, per-channel factorized density (Ballé 2018, appendix 6.1)."""
  return tfc.NoisyDeepFactorized(batch_shape=[channels])


def factorized_bottleneck(prior: tfc.NoisyDeepFactorized) -> tfc.ContinuousBatchedEntropyModel:
  """The training (noisy) bottleneck for a factorized prior."""
  return tfc.ContinuousBatchedEntropyModel(
      prior, coding_rank=3, compression=False, offset_heuristic=False)


def factorized_bits(prior: tfc.NoisyDeepFactorized, values: tf.Tensor) -> tf.Tensor:
  """Information content in bits of values [B, h, w, C] under a factorized
  density (noisy values: the training rate; integers: the coded bits), per image."""
  return tf.reduce_sum(prior.log_prob(values), axis=[1, 2, 3]) / -np.log(2.)


def rate_fitted_to_rounded(bits_of, noisy: tf.Tensor, rounded: tf.Tensor) -> tf.Tensor:
  """The training rate `bits_of(noisy)` for `density_fit="rounded"`: its
  gradient reaches the noisy values (the transforms) but not the density,
  which instead learns from the rounded values it will code (through a term
  of value zero). A density fitted to noisy values spreads their mass over
  neighbouring integers and overstates the bits of the rounded ones
  (`experiments/side_information.py`)."""

  @tf.custom_gradient
  def noisy_bits(values):
    with tf.GradientTape() as tape:
      tape.watch(values)
      bits = bits_of(values)

    def gradient(upstream, variables=None):
      return (tape.gradient(bits, values, output_gradients=upstream),
              [tf.zeros_like(v) for v in variables or ()])

    return bits, gradient

  fit = bits_of(tf.stop_gradient(rounded))
  return noisy_bits(noisy) + fit - tf.stop_gradient(fit)


def factorized_tables(prior: tfc.NoisyDeepFactorized) -> Dict[str, np.ndarray]:
  """Range-coding tables of a trained factorized prior."""

  @tf.function
  def build():
    model = tfc.ContinuousBatchedEntropyModel(
        prior, coding_rank=3, compression=True, stateless=True,
        offset_heuristic=False)
    return model.cdf, model.cdf_offset

  cdf, cdf_offset = build()
  return dict(cdf=cdf.numpy(), cdf_offset=cdf_offset.numpy())


class FactorizedCoder(tf.Module):
  """Range codes latents [1, h, w, C] with one stored table per channel;
  with several sets of C tables (one per quality), `table_set` picks one."""

  def __init__(self, tables: Dict[str, np.ndarray], channels: int, ops: str = "tfc"):
    super().__init__(name="factorized_coder")
    self.entropy_coder = make_coder(ops, tables["cdf"], tables["cdf_offset"])
    self.channels = channels

  def _indexes(self, spatial_shape, table_set):
    return tf.broadcast_to(tf.range(self.channels) + table_set * self.channels,
                           tf.concat([[1], spatial_shape, [self.channels]], 0))

  def compress(self, y: tf.Tensor, table_set: tf.Tensor = 0) -> tf.Tensor:
    """Latents [1, h, w, C] -> string [1]."""
    values = tf.cast(tf.round(y), tf.int32)
    return self.entropy_coder.encode(
        values, self._indexes(tf.shape(y)[1:3], table_set))[None]

  def decompress(self, strings: tf.Tensor, spatial_shape: tf.Tensor,
                 table_set: tf.Tensor = 0) -> tf.Tensor:
    """String [1] and [h, w] -> quantized latents [1, h, w, C]."""
    values = self.entropy_coder.decode(strings[0], self._indexes(spatial_shape, table_set))
    return tf.cast(values, tf.float32)


def factorized_coder(tables: Dict[str, np.ndarray], channels: int,
                     ops: str = "tfc") -> FactorizedCoder:
  """A coder for a factorized prior, from stored tables."""
  return FactorizedCoder(tables, channels, ops)


def _scale_fn(index):
  factor = (np.log(SCALE_MAX) - np.log(SCALE_MIN)) / (NUM_SCALES - 1)
  return tf.math.exp(np.log(SCALE_MIN) + factor * index)


def scale_table_model(compression: bool = False) -> tfc.LocationScaleIndexedEntropyModel:
  """Gaussian conditional with a log-spaced table of NUM_SCALES scales."""
  return tfc.LocationScaleIndexedEntropyModel(
      tfc.NoisyNormal, NUM_SCALES, _scale_fn, coding_rank=3,
      compression=compression)


def scale_table_tables() -> Dict[str, np.ndarray]:
  """Range-coding tables of the Gaussian scale table (no learned parameters)."""
  model = scale_table_model(compression=True)
  return dict(cdf=model.cdf.numpy(), cdf_offset=model.cdf_offset.numpy())


class ScaleTableCoder(tf.Module):
  """Range codes latents with a zero-mean Gaussian picked per element from
  the scale table by an integer index."""

  def __init__(self, tables: Dict[str, np.ndarray], ops: str = "tfc"):
    super().__init__(name="scale_table_coder")
    self.entropy_coder = make_coder(ops, tables["cdf"], tables["cdf_offset"])

  @staticmethod
  def _indexes(indexes):
    return tf.cast(tf.clip_by_value(indexes, 0, NUM_SCALES - 1), tf.int32)

  def compress(self, y: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """Latents and their scale indexes (same shape) -> string [1]."""
    values = tf.cast(tf.round(y), tf.int32)
    return self.entropy_coder.encode(values, self._indexes(indexes))[None]

  def decompress(self, strings: tf.Tensor, indexes: tf.Tensor) -> tf.Tensor:
    """String [1] and scale indexes -> quantized latents of their shape."""
    values = self.entropy_coder.decode(strings[0], self._indexes(indexes))
    return tf.cast(values, tf.float32)


def scale_table_coder(tables: Dict[str, np.ndarray], ops: str = "tfc") -> ScaleTableCoder:
  """A coder for the scale table, from stored tables."""
  return ScaleTableCoder(tables, ops)
