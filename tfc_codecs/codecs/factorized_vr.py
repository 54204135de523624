"""Variable-rate factorized prior: one Ballé 2017 model for every rate.

The transforms and factorized entropy model of `factorized` (Ballé et al.
2017) with the gain units of `variable_rate` (Cui et al. 2021) on its latents.
A factorized density is fixed per channel, so one density cannot fit the
latents of every gain: with `per_quality_priors` each quality has its own
learned density (and range-coding tables) per channel. (With one shared
density, the model shipped before spent 29% and 13.5% more bits than the
empirical entropy of its latents at its lowest and highest qualities:
`python -m experiments.density_gap`.)
"""

import numpy as np
import tensorflow as tf

from tfc_codecs.codecs.factorized import FactorizedCodec
from tfc_codecs.codecs.variable_rate import VariableRate


class VariableRateFactorizedCodec(VariableRate, FactorizedCodec):
  """Factorized prior with one gain (and, by default, one density) per quality."""

  codec_name = "factorized-vr"
  # Models saved before per-quality densities existed share one density.
  stored_config_defaults = {"per_quality_priors": False}

  def __init__(self, *args, per_quality_priors: bool = True, **config):
    super().__init__(*args, per_quality_priors=bool(per_quality_priors), **config)

  @property
  def _table_sets(self) -> int:
    return self.num_qualities if self.config["per_quality_priors"] else 1

  def _prior_channels(self) -> int:
    """Quality q's density of channel c is channel q·M + c of the prior."""
    return self._table_sets * self.config["latent_filters"]

  def _latent_bits_at(self, y, quality_index, training):
    if self._table_sets == 1:
      return self._latent_bits(y, training)

    def bits_of(values):
      """Every quality's density at every latent, then each image's own [B, h, w, M]."""
      log_probs = self.prior.log_prob(tf.tile(values, [1, 1, 1, self._table_sets]))
      shape = tf.concat([tf.shape(values)[:3], [self._table_sets, -1]], 0)
      log_probs = tf.transpose(tf.reshape(log_probs, shape), [0, 3, 1, 2, 4])
      log_probs = tf.gather(log_probs, quality_index, axis=1, batch_dims=1)
      return tf.reduce_sum(log_probs, axis=[1, 2, 3]) / -np.log(2.)

    y_hat, bits = self._factorized_rate(self.bottleneck, y, training, bits_of)
    return self._decoded(y, y_hat, training), bits

  def _table_set(self, quality_index):
    return quality_index[0] if self._table_sets > 1 else 0

  def _encode_latents_at(self, y, quality_index):
    return self.coder.compress(y, self._table_set(quality_index))

  def _decode_latents_at(self, payloads, padded_shape, quality_index):
    return self.coder.decompress(payloads[:1], padded_shape // self.downsampling,
                                 self._table_set(quality_index))

  def carry_over(self, part, values, source):
    """A source's densities become each quality's: a shared density is
    copied to every quality, per-quality ones come from the nearest λ."""
    if part not in ("prior", "bottleneck") or self._table_sets == 1:  # Both hold the densities.
      return super().carry_over(part, values, source)
    channels = self.config["latent_filters"]
    source_sets = values[0].shape[0] // channels
    if source_sets == 1:
      picks = np.zeros(self.num_qualities, int)
    else:
      picks = self.nearest_qualities(source.lambdas, self.lambdas)
    return [np.concatenate([v.reshape(source_sets, channels, *v.shape[1:])[q] for q in picks])
            for v in values]
