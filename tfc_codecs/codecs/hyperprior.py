"""Ballé et al. 2018 scale-hyperprior codec.

> "Variational image compression with a scale hyperprior"
> J. Ballé, D. Minnen, S. Singh, S. J. Hwang, N. Johnston. ICLR 2018.
> https://arxiv.org/abs/1802.01436

GDN analysis -> latents y (M channels); a hyper-analysis summarizes |y| into
hyper-latents z (N channels), coded with a factorized prior as side
information; the hyper-synthesis turns the decoded z into an index into a table
of Gaussian scales for each element of y, which is then range coded with that
conditional Gaussian. Two payload strings: [side information, latents].
"""

from typing import Dict

import numpy as np
import tensorflow as tf

from tfc_codecs.entropy_coding import entropy_models
from tfc_codecs.codecs.transform_coding import LATENT_FILTERS, NUM_FILTERS, TransformCodec
from tfc_codecs.layers.gdn_transforms import (
    AnalysisTransform, HyperAnalysisTransform, HyperSynthesisTransform,
    SynthesisTransform)
from tfc_codecs.layers.fixed_point import exact_hyper_synthesis


class ScaleTableCoding:
  """The range-coding tables of a codec with hyperprior side information:
  the learned factorized density `hyperprior` of the hyper-latents (coded by
  `side_coder`) and the Gaussian scale table (coded by `coder`). Mixed in
  before a `TransformCodec` (`hyperprior`, `channelwise`)."""

  def freeze(self) -> None:
    tables = {f"side_{k}": v for k, v in
              entropy_models.factorized_tables(self.hyperprior).items()}
    tables.update(entropy_models.scale_table_tables())
    self.set_entropy_tables(tables)

  def entropy_tables(self) -> Dict[str, np.ndarray]:
    side, main = self.side_coder.entropy_coder, self.coder.entropy_coder
    return dict(side_cdf=side.cdf, side_cdf_offset=side.cdf_offset,
                cdf=main.cdf, cdf_offset=main.cdf_offset)

  def set_entropy_tables(self, tables: Dict[str, np.ndarray]) -> None:
    side = dict(cdf=tables["side_cdf"], cdf_offset=tables["side_cdf_offset"])
    self.side_coder = entropy_models.factorized_coder(side, self.config["num_filters"], self.ops)
    self.coder = entropy_models.scale_table_coder(tables, self.ops)


class HyperpriorCodec(ScaleTableCoding, TransformCodec):
  """Scale hyperprior; N = `num_filters`, M = `latent_filters`."""

  codec_name = "hyperprior"
  downsampling = 64
  num_payloads = 2
  model_options = (NUM_FILTERS, LATENT_FILTERS)

  def __init__(self, num_filters: int = 128, latent_filters: int = 192, **config):
    super().__init__(num_filters=num_filters, latent_filters=latent_filters, **config)
    self.analysis = AnalysisTransform(num_filters, latent_filters)
    self.synthesis = SynthesisTransform(num_filters)
    self.hyper_analysis = HyperAnalysisTransform(num_filters)
    self.hyper_synthesis = HyperSynthesisTransform(num_filters, latent_filters)
    self.hyperprior = entropy_models.factorized_prior(num_filters)
    self.side_bottleneck = entropy_models.factorized_bottleneck(self.hyperprior)
    self.bottleneck = entropy_models.scale_table_model(compression=False)
    self.side_coder = None
    self.coder = None
    self._build_codec()

  def _latent_bits(self, y, training):
    z = self.hyper_analysis(y)
    z_hat, side_bits = self._factorized_rate(self.side_bottleneck, z, training)
    indexes = self.scale_indexes(self._decoded(z, z_hat, training), training)
    y_hat, bits = self.bottleneck(y, indexes, training=training)
    return self._decoded(y, y_hat, training), bits + side_bits

  def scale_indexes(self, z_hat, training=False):
    """Scale-table indexes for y: continuous in training; for coding, integer
    indexes from the fixed-point hyper-synthesis, which every machine computes
    identically (a float32 index that lands on the other side of a rounding
    boundary in the decoder would desynchronize the range decoder)."""
    if training:
      return self.hyper_synthesis(z_hat)
    return exact_hyper_synthesis(self.hyper_synthesis, z_hat)

  def _encode_latents(self, y):
    z = self.hyper_analysis(y)
    side_string = self.side_coder.compress(z)
    indexes = self.scale_indexes(tf.round(z))
    return tf.concat([side_string, self.coder.compress(y, indexes)], 0)

  def _decode_latents(self, payloads, padded_shape):
    z_hat = self.side_coder.decompress(payloads[:1], padded_shape // self.downsampling)
    return self.coder.decompress(payloads[1:2], self.scale_indexes(z_hat))
