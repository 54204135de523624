"""Ballé et al. 2017 factorized-prior codec.

> "End-to-end optimized image compression"
> J. Ballé, V. Laparra, E. P. Simoncelli. ICLR 2017.
> https://arxiv.org/abs/1611.01704

GDN analysis transform -> rounded latents coded with a learned per-channel
factorized density -> IGDN synthesis transform. One payload string.
"""

from typing import Dict

import numpy as np

from tfc_codecs.entropy_coding import entropy_models
from tfc_codecs.codecs.transform_coding import LATENT_FILTERS, NUM_FILTERS, TransformCodec
from tfc_codecs.layers.gdn_transforms import AnalysisTransform, SynthesisTransform


class FactorizedCodec(TransformCodec):
  """Factorized prior; `num_filters` hidden and `latent_filters` latent channels."""

  codec_name = "factorized"
  downsampling = 16
  num_payloads = 1
  model_options = (NUM_FILTERS, LATENT_FILTERS)

  def __init__(self, num_filters: int = 128, latent_filters: int = 0, **config):
    latent_filters = latent_filters or num_filters
    super().__init__(num_filters=num_filters, latent_filters=latent_filters, **config)
    self.analysis = AnalysisTransform(num_filters, latent_filters)
    self.synthesis = SynthesisTransform(num_filters)
    self.prior = entropy_models.factorized_prior(self._prior_channels())
    self.bottleneck = entropy_models.factorized_bottleneck(self.prior)
    self.coder = None
    self._build_codec()

  def _prior_channels(self) -> int:
    """Channels of the factorized density: one per latent channel."""
    return self.config["latent_filters"]

  def _latent_bits(self, y, training):
    y_hat, bits = self._factorized_rate(self.bottleneck, y, training)
    return self._decoded(y, y_hat, training), bits

  def freeze(self) -> None:
    self.set_entropy_tables(entropy_models.factorized_tables(self.prior))

  def entropy_tables(self) -> Dict[str, np.ndarray]:
    coder = self.coder.entropy_coder
    return dict(cdf=coder.cdf, cdf_offset=coder.cdf_offset)

  def set_entropy_tables(self, tables: Dict[str, np.ndarray]) -> None:
    self.coder = entropy_models.factorized_coder(tables, self.config["latent_filters"],
                                                 self.ops)

  def _encode_latents(self, y):
    return self.coder.compress(y)

  def _decode_latents(self, payloads, padded_shape):
    return self.coder.decompress(payloads[:1], padded_shape // self.downsampling)
