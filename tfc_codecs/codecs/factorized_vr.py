"""Variable-rate factorized prior: one Ballé 2017 model for every rate.

The transforms and factorized entropy model of `factorized` (Ballé et al.
2017) with the gain units of `variable_rate` (Cui et al. 2021) on its latents.
"""

from tfc_codecs.codecs.factorized import FactorizedCodec
from tfc_codecs.codecs.variable_rate import VariableRate


class VariableRateFactorizedCodec(VariableRate, FactorizedCodec):
  """Factorized prior with one gain per quality."""

  codec_name = "factorized-vr"
