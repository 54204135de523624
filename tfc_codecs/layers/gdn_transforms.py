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
          activation=None, use_bias: bool = True) -> tfc.SignalConv2D:
  return _signal_conv(filters, kernel, name, corr=True, strides_down=down,
                      use_bias=use_bias, activation=activation)


def _deconv(filters: int, kernel: int, name: str, up: int = 1,
            activation=None, use_bias: bool = True) -> tfc.SignalConv2D:
  return _signal_conv(filters, kernel, name, corr=False, strides_up=up,
                      use_bias=use_bias, activation=activation)


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
  """|latents| -> hyper-latents: 3x3/1, 5x5/2, 5x5/2 with ReLUs."""

  def __init__(self, num_filters: int):
    super().__init__(name="hyper_analysis")
    self.add(tf.keras.layers.Lambda(tf.abs))
    self.add(_conv(num_filters, 3, "layer_0", activation=tf.nn.relu))
    self.add(_conv(num_filters, 5, "layer_1", down=2, activation=tf.nn.relu))
    self.add(_conv(num_filters, 5, "layer_2", down=2, use_bias=False))
    _float32_output(self)


class HyperSynthesisTransform(tf.keras.Sequential):
  """Hyper-latents -> scale-table indexes, one per latent element."""

  def __init__(self, num_filters: int, latent_filters: int):
    super().__init__(name="hyper_synthesis")
    self.add(_deconv(num_filters, 5, "layer_0", up=2, activation=tf.nn.relu))
    self.add(_deconv(num_filters, 5, "layer_1", up=2, activation=tf.nn.relu))
    self.add(_deconv(latent_filters, 3, "layer_2"))
    _float32_output(self)


FRACTION_BITS = 12  # Fixed-point precision of exact_hyper_synthesis.


def _signal_conv_float64(layer: tfc.SignalConv2D, x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """What `layer` computes ("same_zeros" convolution, optionally upsampled),
  on float64 tensors, with the given kernel and without bias or activation."""
  support = layer.kernel_support[0]
  if layer.strides_up[0] == 1:  # Flipped kernel, correlation (as SignalConv2D does).
    pad = [(support // 2, (support - 1) // 2)] * 2
    return tf.nn.conv2d(x, kernel[::-1, ::-1], 1, [(0, 0)] + pad + [(0, 0)])
  stride = layer.strides_up[0]
  shape = tf.shape(x)
  pad = [(support // 2, (support - 1) // 2)] * 2
  output_shape = tf.stack([shape[0], shape[1] * stride, shape[2] * stride, layer.filters])
  return tf.nn.conv2d_transpose(x, tf.transpose(kernel, [0, 1, 3, 2]), output_shape,
                                stride, [(0, 0)] + pad + [(0, 0)])


def exact_hyper_synthesis(transform: HyperSynthesisTransform, z_hat: tf.Tensor) -> tf.Tensor:
  """The hyper-synthesis on integer hyper-latents in fixed-point arithmetic:
  kernels, biases and activations rounded to FRACTION_BITS fractional bits and
  carried as integer-valued float64, whose sums are exact (far below 2^53) in
  any order. The outputs, rounded to integer scale-table indexes, are thus the
  same on every machine, thread count and CPU kernel choice, unlike float32
  convolutions whose rounding depends on them (Ballé et al. 2019, "Integer
  networks for data compression with latent-variable models", make the same
  point). Returns float32 integer-valued indexes."""
  one = 2. ** FRACTION_BITS
  x, x_scale = tf.cast(z_hat, tf.float64), 1.
  for layer in transform.layers:
    kernel = tf.round(tf.cast(layer.kernel, tf.float64) * one)
    bias = tf.round(tf.cast(layer.bias, tf.float64) * one * x_scale)
    acc = _signal_conv_float64(layer, x, kernel) + bias  # Scale one * x_scale.
    if layer.activation in (None, tf.keras.activations.linear):
      return tf.cast(tf.floor(acc / (one * x_scale) + .5), tf.float32)
    if layer.activation is not tf.nn.relu:
      raise ValueError("exact_hyper_synthesis supports ReLU activations only")
    x = tf.nn.relu(tf.floor(acc / x_scale + .5))  # Back to scale `one`.
    x_scale = one
  raise ValueError("the hyper-synthesis must end in a layer without activation")
