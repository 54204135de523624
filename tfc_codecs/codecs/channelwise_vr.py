"""Variable-rate channel-conditional codec: one Minnen & Singh 2020 model
for every rate.

The transforms and entropy model of `channelwise` (Minnen & Singh 2020) with
the gain units of `variable_rate` (Cui et al. 2021) on its latents; the
default model of tfc_codecs.
"""

from tfc_codecs.codecs.channelwise import ChannelwiseCodec
from tfc_codecs.codecs.variable_rate import VariableRate


class VariableRateChannelwiseCodec(VariableRate, ChannelwiseCodec):
  """Channel-conditional mean-scale hyperprior with one gain per quality."""

  codec_name = "channelwise-vr"
