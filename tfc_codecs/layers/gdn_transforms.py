"""GDN-based analysis/synthesis transforms and the ReLU hyper-transforms.

Ballé, Laparra, Simoncelli, "End-to-end optimized image compression",
ICLR 2017; Ballé, Minnen, Singh, Hwang, Johnston, "Variational image
compression with a scale hyperprior", ICLR 2018.

Kernels are plain variables: tensorflow-compression's default Fourier (RDFT)
reparameterization made a training step 2.6x slower on our 2-core CPUs
(analysis + synthesis forward/backward, batch 8 x 128x128: 2.11 s vs 0.79 s).

Images enter the analysis transform on the 0..255 scale and leave the
synthesis transform on the same scale.

Their convolutions compute in the precision `precision.conv_dtype` sets
(bfloat16 when training with `--conv_dtype bfloat16`).
"""

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_codecs.layers import precision


def _signal_conv(filters: int, kernel: int, name: str, **options) -> tfc.SignalConv2D:
  policy = precision.conv_policy()
  if policy:
    # TF's bfloat16 kernels for explicitly padded convolutions are 50-70x
    # slower than tf.pad + a valid convolution. float32 keeps TFC's default,
    # so models that code compute exactly as before.
    options.update(dtype=policy, use_explicit=False)
  return tfc.SignalConv2D(filters, (kernel, kernel), name=name, padding="same_zeros",
                          kernel_parameter="variable", **options)


def _conv(filters: int, kernel: int, name: str, down: int = 1,
          activation=None, use_bias: bool = True, **options) -> tfc.SignalConv2D:
  return _signal_conv(filters, kernel, name, corr=True, strides_down=down,
                      use_bias=use_bias, activation=activation, **options)


def _deconv(filters: int, kernel: int, name: str, up: int = 1,
            activation=None, use_bias: bool = True, **options) -> tfc.SignalConv2D:
  return _signal_conv(filters, kernel, name, corr=False, strides_up=up,
                      use_bias=use_bias, activation=activation, **options)


def _float32_output(transform: tf.keras.Sequential) -> None:
  """Ends a transform built with bfloat16 convolutions in a cast to float32."""
  if precision.conv_policy():
    transform.add(tf.keras.layers.Lambda(lambda x: tf.cast(x, tf.float32), name="to_float32"))


class AnalysisTransform(tf.keras.Sequential):
  """Image (0..255) -> latents: four 5x5/2 convolutions, GDN between them."""

  def __init__(self, num_filters: int, latent_filters: int):
    super().__init__(name="analysis")
    self.add(tf.keras.layers.Lambda(lambda x: x / 255.))
    for i in range(3):
      self.add(_conv(num_filters, 5, f"layer_{i}", down=2,
                     activation=tfc.GDN(name=f"gdn_{i}")))
    self.add(_conv(latent_filters, 5, "layer_3", down=2, use_bias=False))
    _float32_output(self)


class SynthesisTransform(tf.keras.Sequential):
  """Latents -> image (0..255): four 5x5 up-convolutions, IGDN between them."""

  def __init__(self, num_filters: int):
    super().__init__(name="synthesis")
    for i in range(3):
      self.add(_deconv(num_filters, 5, f"layer_{i}", up=2,
                       activation=tfc.GDN(name=f"igdn_{i}", inverse=True)))
    self.add(_deconv(3, 5, "layer_3", up=2))
    self.add(tf.keras.layers.Lambda(lambda x: x * 255.))
    _float32_output(self)


class HyperAnalysisTransform(tf.keras.Sequential):
  """|latents| -> hyper-latents: 3x3/1, 5x5/2, 5x5/2 with ReLUs. `signed`:
  [|latents|, latents] in, so the hyper-latents can carry the means' signs."""

  def __init__(self, num_filters: int, signed: bool = False):
    super().__init__(name="hyper_analysis")
    if signed:
      self.add(tf.keras.layers.Lambda(lambda y: tf.concat([tf.abs(y), y], -1)))
    else:
      self.add(tf.keras.layers.Lambda(tf.abs))
    self.add(_conv(num_filters, 3, "layer_0", activation=tf.nn.relu))
    self.add(_conv(num_filters, 5, "layer_1", down=2, activation=tf.nn.relu))
    self.add(_conv(num_filters, 5, "layer_2", down=2, use_bias=False))
    _float32_output(self)


class HyperSynthesisTransform(tf.keras.Sequential):
  """Hyper-latents -> one parameter per latent element (a scale-table index,
  or with `zero_output` a mean, starting at 0)."""

  def __init__(self, num_filters: int, latent_filters: int, name: str = "hyper_synthesis",
               zero_output: bool = False):
    super().__init__(name=name)
    self.add(_deconv(num_filters, 5, "layer_0", up=2, activation=tf.nn.relu))
    self.add(_deconv(num_filters, 5, "layer_1", up=2, activation=tf.nn.relu))
    self.add(_deconv(latent_filters, 3, "layer_2",
                     **(dict(kernel_initializer="zeros") if zero_output else {})))
    _float32_output(self)


class ContextTransform(tf.keras.Sequential):
  """Latent-resolution context -> entropy-model parameters or a latent
  correction: three 3x3 convolutions with ReLUs between, the last one starting
  at zero (so a new context transform changes nothing until trained)."""

  def __init__(self, hidden_filters: int, output_filters: int, name: str):
    super().__init__(name=name)
    self.add(_conv(hidden_filters, 3, "layer_0", activation=tf.nn.relu))
    self.add(_conv(hidden_filters // 2, 3, "layer_1", activation=tf.nn.relu))
    self.add(_conv(output_filters, 3, "layer_2", kernel_initializer="zeros"))
    _float32_output(self)
