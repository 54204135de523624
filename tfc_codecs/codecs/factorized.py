"""Ballé et al. 2017 factorized-prior codec.

> "End-to-end optimized image compression"
> J. Ballé, V. Laparra, E. P. Simoncelli. ICLR 2017.
> https://arxiv.org/abs/1611.01704

GDN analysis transform -> rounded latents coded with a learned per-channel
factorized density -> IGDN synthesis transform. One payload string.
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tfc_codecs import entropy_models
from tfc_codecs.codecs.base import Codec, to_uint8
from tfc_codecs.layers.gdn_transforms import AnalysisTransform, SynthesisTransform
from tfc_codecs.layers.tiling import tiled_analysis, tiled_synthesis


class FactorizedCodec(Codec):
  """Factorized prior; `num_filters` hidden and `latent_filters` latent channels."""

  codec_name = "factorized"
  downsampling = 16
  num_payloads = 1
  # Pixels; analysis and synthesis run over tiles with exact halos (see
  # layers/tiling.py), the entropy coding is whole-image. Not part of the format.
  tile_size = 1024

  def __init__(self, num_filters: int = 128, latent_filters: int = 0):
    latent_filters = latent_filters or num_filters
    super().__init__(num_filters=num_filters, latent_filters=latent_filters)
    self.analysis = AnalysisTransform(num_filters, latent_filters)
    self.synthesis = SynthesisTransform(num_filters)
    self.prior = entropy_models.factorized_prior(latent_filters)
    self.bottleneck = entropy_models.factorized_bottleneck(self.prior)
    self.coder = None
    self._build_codec()

  def _forward(self, x, training):
    y = self.analysis(x)
    y_hat, bits = self.bottleneck(y, training=training)
    return self.synthesis(y_hat), bits

  def freeze(self) -> None:
    self.set_entropy_tables(entropy_models.factorized_tables(self.prior))

  def entropy_tables(self) -> Dict[str, np.ndarray]:
    coder = self.coder.entropy_coder
    return dict(cdf=coder.cdf, cdf_offset=coder.cdf_offset)

  def set_entropy_tables(self, tables: Dict[str, np.ndarray]) -> None:
    self.coder = entropy_models.factorized_coder(tables, self.config["latent_filters"],
                                                 self.ops)

  def analyze(self, x):
    """Latents of a padded image [1, H, W, 3] (uint8 or float), tile by tile."""
    return tiled_analysis(self.analysis, x, self.tile_size)

  def synthesize(self, y_hat):
    """uint8 [1, H, W, 3] image of latents, tile by tile."""
    return tiled_synthesis(self.synthesis, y_hat, self.tile_size, to_uint8, tf.uint8)

  def _compress_padded(self, x):
    return self.coder.compress(self.analyze(x))

  def _decompress_padded(self, payloads, padded_shape):
    return self.synthesize(
        self.coder.decompress(payloads[:1], padded_shape // self.downsampling))
