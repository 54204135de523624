"""The entropy models of the Ballé codecs, in their training and frozen forms.

Training uses tensorflow-compression's noisy entropy models (uniform noise as
the quantization proxy). For coding, the integer range-coding tables are
computed once (`*_tables`) and stored with the weights; coders are rebuilt
from those stored integers, so encoder and decoder never recompute them.
Quantization is plain rounding (no offset heuristic), so the model's own
quantized forward pass and the range-coded path see identical latents.
"""

from typing import Dict

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

SCALE_MIN = 0.11
SCALE_MAX = 256.
NUM_SCALES = 64


def factorized_prior(channels: int) -> tfc.NoisyDeepFactorized:
  """A learned, per-channel factorized density (Ballé 2018, appendix 6.1)."""
  return tfc.NoisyDeepFactorized(batch_shape=[channels])


def factorized_bottleneck(prior: tfc.NoisyDeepFactorized) -> tfc.ContinuousBatchedEntropyModel:
  """The training (noisy) bottleneck for a factorized prior."""
  return tfc.ContinuousBatchedEntropyModel(
      prior, coding_rank=3, compression=False, offset_heuristic=False)


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


def factorized_coder(tables: Dict[str, np.ndarray],
                     channels: int) -> tfc.ContinuousBatchedEntropyModel:
  """A range coder for a factorized prior, from stored tables."""
  return tfc.ContinuousBatchedEntropyModel(
      prior_shape=[channels], coding_rank=3, compression=True,
      cdf=tf.constant(tables["cdf"], tf.int32),
      cdf_offset=tf.constant(tables["cdf_offset"], tf.int32),
      offset_heuristic=False, decode_sanity_check=True)


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


def scale_table_coder(tables: Dict[str, np.ndarray]) -> tfc.LocationScaleIndexedEntropyModel:
  """A range coder for the scale table, with the stored tables installed."""
  model = scale_table_model(compression=True)
  model.set_weights([tables["cdf"], tables["cdf_offset"]])
  return model
