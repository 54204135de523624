"""Variable-rate scale hyperprior: one Ballé 2018 model for every rate.

The transforms and entropy models of `hyperprior` (Ballé et al. 2018) with the
gain units of `variable_rate` (Cui et al. 2021) on its latents.
"""

from tfc_codecs.codecs.hyperprior import HyperpriorCodec
from tfc_codecs.codecs.variable_rate import VariableRate


class VariableRateHyperpriorCodec(VariableRate, HyperpriorCodec):
  """Scale hyperprior (N=128, M=192 by default) with one gain per quality."""

  codec_name = "hyperprior-vr"
