"""Transform coding: analysis → entropy-coded latents → synthesis.

The shape shared by the Ballé codecs: a GDN analysis transform maps the image
to latents y (16x smaller), an entropy model codes the rounded latents, and an
IGDN synthesis transform maps them back. Subclasses supply the entropy model
through three hooks: `_latent_bits` (training), `_encode_latents` and
`_decode_latents` (range coding). Analysis and synthesis run tile by tile with
exact halos (see layers/tiling.py), so memory stays bounded on large images.

Training quantization (`quantization`, set by `train --quantization`):
"noise" adds uniform noise wherever rounding will be (Ballé et al. 2017);
"mixed" keeps the noise for the rate but gives the decoding transforms the
rounded values they will see when decoding, with straight-through gradients
(Minnen & Singh 2020, https://arxiv.org/abs/2007.08739; TFC's ms2020 model).

Density fitting in training (`density_fit`, set by `train --density_fit`):
"noisy" trains the learned factorized densities on the noisy values, as the
rate; "rounded" trains them on the rounded values they will code, while the
noisy rate's gradient still reaches the transforms
(`entropy_models.rate_fitted_to_rounded`).
"""

import abc

import tensorflow as tf

from tfc_codecs.entropy_coding import entropy_models
from tfc_codecs.codecs.base import PaddedCodec, to_uint8
from tfc_codecs.codecs.options import Option
from tfc_codecs.layers import upsampling
from tfc_codecs.layers.tiling import tiled_analysis, tiled_synthesis

QUANTIZATIONS = ("noise", "mixed")  # Training quantization, see the module docstring.
DENSITY_FITS = ("noisy", "rounded")  # Training density fitting, likewise.

# Model options of the transform codecs' constructors.
NUM_FILTERS = Option("num_filters", "N: channels of the hidden layers (default 128).", int)
LATENT_FILTERS = Option("latent_filters", "M: channels of the latents (default 192; "
                        "factorized: N).", int)


class TransformCodec(PaddedCodec):
  """A codec with `analysis` and `synthesis` transforms around coded latents."""

  # Pixels; not part of the file format (only the transforms are tiled, the
  # entropy coding is whole-image).
  tile_size = 1024
  quantization = "noise"  # In training: one of QUANTIZATIONS (module docstring).
  density_fit = "noisy"  # In training: one of DENSITY_FITS (module docstring).
  training_options = (
      Option("quantization", "Uniform noise for rate and decoder (noise), or noise for the "
             "rate and rounded latents with straight-through gradients for the decoder "
             "(mixed).", choices=QUANTIZATIONS),
      Option("density_fit", "Fit the learned factorized densities to the noisy values "
             "(noisy) or to the rounded values they will code, the noisy rate still "
             "training the transforms (rounded).", choices=DENSITY_FITS))

  def _decoded(self, value, noisy, training):
    """What a decoding transform sees of a quantized `value` (its noisy
    version `noisy` in training)."""
    if training and self.quantization == "mixed":
      return value + tf.stop_gradient(tf.round(value) - value)
    return noisy

  def _factorized_rate(self, bottleneck, values, training, bits_of=None):
    """(noisy or rounded values, bits per image) of `values` coded with a
    learned factorized density: `bottleneck`'s, or `bits_of(values)` (e.g.
    one density per quality) with `bottleneck` only quantizing."""
    if training:
      noisy = values + tf.random.uniform(tf.shape(values), -.5, .5)
    else:
      noisy = bottleneck.quantize(values)
    bits_of = bits_of or (lambda v: entropy_models.factorized_bits(bottleneck.prior, v))
    if training and self.density_fit == "rounded":
      return noisy, entropy_models.rate_fitted_to_rounded(bits_of, noisy, tf.round(values))
    return noisy, bits_of(noisy)

  def _synthesized(self, y_hat, training):
    """The synthesis of `y_hat`: in training the Keras layers, otherwise the
    kernels decompress runs (`upsampling.synthesize`), so the model's own
    reconstruction is what decoding its file gives."""
    return self.synthesis(y_hat) if training else upsampling.synthesize(self.synthesis, y_hat)

  def _forward(self, x, training):
    y_hat, bits = self._latent_bits(self.analysis(x), training)
    return self._synthesized(y_hat, training), bits

  def analyze(self, x):
    """Latents of a padded image [1, H, W, 3] (uint8 or float), tile by tile."""
    return tiled_analysis(self.analysis, x, self.tile_size)

  def synthesize(self, y_hat):
    """uint8 [1, H, W, 3] image of latents, tile by tile."""
    return tiled_synthesis(self.synthesis, y_hat, self.tile_size, to_uint8, tf.uint8)

  def _compress_padded(self, x):
    return self._encode_latents(self.analyze(x))

  def _decompress_padded(self, payloads, padded_shape):
    return self.synthesize(self._decode_latents(payloads, padded_shape))

  @abc.abstractmethod
  def _latent_bits(self, y, training):
    """The quantized latents the synthesis sees (in training as
    `quantization` says) and their bits per image [B]."""

  @abc.abstractmethod
  def _encode_latents(self, y):
    """Latents [1, h, w, M] of one image -> payload strings."""

  @abc.abstractmethod
  def _decode_latents(self, payloads, padded_shape):
    """Payload strings + padded image (height, width) -> decoded latents."""
