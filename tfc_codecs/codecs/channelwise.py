"""Minnen & Singh 2020 channel-conditional mean-scale hyperprior codec.

> "Channel-wise autoregressive entropy models for learned image compression"
> D. Minnen, S. Singh. ICIP 2020.
> https://arxiv.org/abs/2007.08739

The Ballé 2018 transforms (`hyperprior`), with an entropy model that predicts
a Gaussian mean and scale for every latent. The latents y are split into
channel slices, coded one after another: the parameters of slice k come from
the hyper-synthesis outputs (a mean and a scale-table index per latent) plus a
context transform of those outputs and the slices decoded before k. After
decoding, latent residual prediction (LRP) adds 0.5·tanh(·) of a context
transform of the decoded slices to slice k, before the synthesis.

Slices are uneven, small first (He et al. 2022, ELIC): by default 1/12, 1/12,
1/6, 1/3, 1/3 of the latents, so the later, larger slices have context.

Unlike the paper, the hyper-analysis sees [|y|, y] (so the first slice's means
have signs to predict from, while a model started from `hyperprior` starts
from its exact hyper-latents), and the slices' context is the decoded slices
before LRP: the whole chain that sets a latent's mean and scale index (hyper-
synthesis and context transforms) then runs in exact fixed point
(`layers/fixed_point.py`) when coding, so the entropy decoder sees the
encoder's parameters on every machine, and only the LRP and synthesis run in
float32. Means are fixed point with FRACTION_BITS fractional bits.

Payload strings: [side information, slice 1, ..., slice K].
"""

from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfc_codecs.entropy_coding import entropy_models
from tfc_codecs.codecs.hyperprior import ScaleTableCoding
from tfc_codecs.codecs.options import Option, int_list
from tfc_codecs.codecs.transform_coding import LATENT_FILTERS, NUM_FILTERS, TransformCodec
from tfc_codecs.errors import CodecError
from tfc_codecs.layers import fixed_point, tiling
from tfc_codecs.layers.gdn_transforms import (
    AnalysisTransform, ContextTransform, HyperAnalysisTransform, HyperSynthesisTransform,
    SynthesisTransform)


def default_slices(latent_filters: int) -> Tuple[int, ...]:
  """1/12, 1/12, 1/6, 1/3, 1/3 of the latents; if M is not a multiple of 12,
  min(5, M) slices as equal as can be."""
  if latent_filters % 12 == 0:
    unit = latent_filters // 12
    return (unit, unit, 2 * unit, 4 * unit, 4 * unit)
  count = min(5, latent_filters)
  return tuple(latent_filters // count + (k >= count - latent_filters % count)
               for k in range(count))


class SliceChain(NamedTuple):
  """What the fixed-point slice chain yields for one batch of latents."""
  decoded: tf.Tensor  # Quantized latents ŷ = symbols + means, before LRP.
  synthesized: tf.Tensor  # ŷ after LRP: what the synthesis sees (None when encoding).
  bits: tf.Tensor  # Estimated bits of the coded symbols, per image [B] (0 when encoding).
  strings: List[tf.Tensor]  # One payload string [1] per slice, when encoding.


class ChannelwiseCodec(ScaleTableCoding, TransformCodec):
  """Channel-conditional mean-scale hyperprior; N = `num_filters`,
  M = `latent_filters` in `slices` (channel counts, summing to M), context
  transforms `context_filters` wide."""

  codec_name = "channelwise"
  downsampling = 64
  model_options = (
      NUM_FILTERS, LATENT_FILTERS,
      Option("slices", "Comma-separated channel counts of the latent slices, summing to M "
             "(default 1/12, 1/12, 1/6, 1/3, 1/3 of M).", int_list),
      Option("context_filters", "Width of the slice context transforms (default 128).", int))

  def __init__(self, num_filters: int = 128, latent_filters: int = 192,
               slices: Sequence[int] = (), context_filters: int = 128, **config):
    slices = tuple(int(s) for s in slices) or default_slices(latent_filters)
    if sum(slices) != latent_filters or min(slices) < 1:
      raise CodecError(f"slices {slices} must be positive and sum to {latent_filters}")
    super().__init__(num_filters=num_filters, latent_filters=latent_filters,
                     slices=slices, context_filters=context_filters, **config)
    self.analysis = AnalysisTransform(num_filters, latent_filters)
    self.synthesis = SynthesisTransform(num_filters)
    self.hyper_analysis = HyperAnalysisTransform(num_filters, signed=True)
    self.hyper_synthesis = HyperSynthesisTransform(num_filters, latent_filters)
    self.hyper_synthesis_mean = HyperSynthesisTransform(
        num_filters, latent_filters, name="hyper_synthesis_mean", zero_output=True)
    self.parameter_transforms = [
        ContextTransform(context_filters, 2 * size, f"parameters_{k}")
        for k, size in enumerate(slices)]
    self.lrp_transforms = [
        ContextTransform(context_filters, size, f"lrp_{k}") for k, size in enumerate(slices)]
    self.hyperprior = entropy_models.factorized_prior(num_filters)
    self.side_bottleneck = entropy_models.factorized_bottleneck(self.hyperprior)
    self.bottleneck = entropy_models.scale_table_model(compression=False)
    self.side_coder = None
    self.coder = None
    self._build_codec()

  @property
  def slices(self) -> Tuple[int, ...]:
    return tuple(self.config["slices"])

  @property
  def num_payloads(self) -> int:
    return 1 + len(self.slices)

  def _slice_bounds(self) -> List[Tuple[int, int]]:
    ends = np.cumsum(self.slices)
    return [(int(end - size), int(end)) for size, end in zip(self.slices, ends)]

  def carry_over(self, part, values, source):
    """A `hyperprior`'s hyper-analysis saw |y| only: the weights of the signed
    input start at zero, so the hyper-latents start as they were."""
    if part == "hyper_analysis" and values[0].shape[2] == self.config["latent_filters"]:
      values = [np.concatenate([values[0], np.zeros_like(values[0])], axis=2)] + values[1:]
    return super().carry_over(part, values, source)

  # Training and the model's own reconstruction ----------------------------
  def _latent_bits(self, y, training):
    z = self.hyper_analysis(y)
    z_hat, side_bits = self._factorized_rate(self.side_bottleneck, z, training)
    z_hat = self._decoded(z, z_hat, training)
    if not training:  # Exactly what coding computes.
      chain = self.slice_chain(z_hat, y=y)
      return chain.synthesized, chain.bits + side_bits
    mean_features = self.hyper_synthesis_mean(z_hat)
    scale_features = self.hyper_synthesis(z_hat)
    decoded, synthesized, bits = [], [], side_bits
    for k, (start, end) in enumerate(self._slice_bounds()):
      params = self.parameter_transforms[k](
          tf.concat([mean_features, scale_features] + decoded, -1))
      mean = mean_features[..., start:end] + params[..., :end - start]
      index = scale_features[..., start:end] + params[..., end - start:]
      y_slice = y[..., start:end]
      noisy, slice_bits = self.bottleneck(y_slice, index, loc=mean, training=True)
      bits += slice_bits
      if self.quantization == "mixed":  # Rounded, straight-through gradients.
        centered = y_slice - mean
        decoded.append(centered + tf.stop_gradient(tf.round(centered) - centered) + mean)
      else:
        decoded.append(noisy)
      synthesized.append(decoded[-1] + self._lrp(k, mean_features, decoded))
    return tf.concat(synthesized, -1), bits

  def _lrp(self, k, mean_features, decoded, tiled=False):
    """Latent residual prediction for slice k from the slices decoded so far
    (`tiled`: over tiles of `tile_size` pixels, as the synthesis)."""
    transform = self.lrp_transforms[k]
    context = tf.concat([mean_features] + decoded, -1)
    if tiled:
      return .5 * tf.tanh(self._tiled(transform, transform, context, tf.float32))
    return .5 * tf.tanh(transform(context))

  def _tiled(self, transform, fn, x, dtype):
    """`fn`, a stride-1 function with `transform`'s receptive field, over
    latent tiles of `tile_size` pixels: memory stays bounded on huge images."""
    return tiling.tiled(fn, x, self.tile_size // 16, tiling.halos(transform, 1, 1), 1, 1,
                        dtype, tiling.output_channels(transform))

  def _exact_parameters(self, k, support):
    """Slice k's context transform in fixed point (scale ONE in and out),
    tile by tile: exact, so the tiles change nothing."""
    transform = self.parameter_transforms[k]

    def run(x):
      acc, scale = fixed_point.exact_conv_stack(transform.layers, x, fixed_point.ONE)
      return fixed_point.rescale(acc, scale)

    return self._tiled(transform, run, support, tf.float64)

  # Coding -------------------------------------------------------------------
  def slice_chain(self, z_hat: tf.Tensor, y: tf.Tensor = None, payloads: tf.Tensor = None,
                  encode: bool = False) -> SliceChain:
    """Runs the slice chain in fixed point, from integer hyper-latents: with
    latents `y` it quantizes them (and with `encode` only codes each slice
    into a string), with `payloads` it decodes each slice's string instead.
    Means are fixed point at scale ONE; indexes are integers."""
    one = fixed_point.ONE
    mean_acc, mean_scale = fixed_point.exact_conv_stack(self.hyper_synthesis_mean.layers, z_hat)
    scale_acc, scale_scale = fixed_point.exact_conv_stack(self.hyper_synthesis.layers, z_hat)
    mean_features = fixed_point.rescale(mean_acc, mean_scale)  # Scale ONE.
    scale_features = fixed_point.rescale(scale_acc, scale_scale)
    mean_float = tf.cast(mean_features / one, tf.float32)
    decoded_fixed, decoded, synthesized, strings = [], [], [], []
    bits = tf.zeros([tf.shape(z_hat)[0]])
    for k, (start, end) in enumerate(self._slice_bounds()):
      size = end - start
      params = self._exact_parameters(
          k, tf.concat([mean_features, scale_features] + decoded_fixed, -1))
      mean = mean_features[..., start:end] + params[..., :size]  # Scale ONE.
      index = tf.floor((scale_features[..., start:end] + params[..., size:]) / one + .5)
      index = tf.cast(index, tf.float32)
      if payloads is None:
        symbols = tf.round(tf.cast(y[..., start:end], tf.float64) - mean / one)
        if encode:
          strings.append(self.coder.compress(tf.cast(symbols, tf.float32), index))
        else:
          _, slice_bits = self.bottleneck(tf.cast(symbols, tf.float32), index, training=False)
          bits += slice_bits
      else:
        symbols = tf.cast(self.coder.decompress(payloads[1 + k:2 + k], index), tf.float64)
      decoded_fixed.append(symbols * one + mean)
      decoded.append(tf.cast(decoded_fixed[-1] / one, tf.float32))
      if not encode:  # The encoder needs neither LRP nor the estimate.
        synthesized.append(decoded[-1] + self._lrp(k, mean_float, decoded, tiled=True))
    return SliceChain(tf.concat(decoded, -1), tf.concat(synthesized, -1) if synthesized else None,
                      bits, strings)

  def _encode_latents(self, y):
    z = self.hyper_analysis(y)
    side_string = self.side_coder.compress(z)
    chain = self.slice_chain(tf.round(z), y=y, encode=True)
    return tf.concat([side_string] + chain.strings, 0)

  def _decode_latents(self, payloads, padded_shape):
    z_hat = self.side_coder.decompress(payloads[:1], padded_shape // self.downsampling)
    return self.slice_chain(z_hat, payloads=payloads).synthesized
