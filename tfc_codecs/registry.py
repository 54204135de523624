"""Codec registry: name -> class. A new codec is one module plus one entry."""

from typing import Dict, Type

from tfc_codecs.codecs.base import Codec
from tfc_codecs.codecs.channelwise import ChannelwiseCodec
from tfc_codecs.codecs.channelwise_vr import VariableRateChannelwiseCodec
from tfc_codecs.codecs.factorized import FactorizedCodec
from tfc_codecs.codecs.factorized_vr import VariableRateFactorizedCodec
from tfc_codecs.codecs.hyperprior import HyperpriorCodec
from tfc_codecs.codecs.hyperprior_vr import VariableRateHyperpriorCodec
from tfc_codecs.codecs.rnn import RnnCodec
from tfc_codecs.errors import CodecError

CODECS: Dict[str, Type[Codec]] = {
    cls.codec_name: cls for cls in (FactorizedCodec, VariableRateFactorizedCodec, HyperpriorCodec,
                                    VariableRateHyperpriorCodec, ChannelwiseCodec,
                                    VariableRateChannelwiseCodec, RnnCodec)}


def codec_class(name: str) -> Type[Codec]:
  """The codec class registered under `name`."""
  try:
    return CODECS[name]
  except KeyError:
    raise CodecError(
        f"unknown codec {name!r} (known: {', '.join(sorted(CODECS))})") from None
