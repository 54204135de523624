"""Exact fixed-point evaluation of the conv stacks that drive entropy coding.

The decoder must compute the same entropy-model parameters (scale-table
indexes, means) as the encoder, bit for bit, or the entropy decoder
desynchronizes. float32 convolutions round differently with the machine,
thread count and CPU kernel choice, so these stacks are evaluated here in
fixed point instead: kernels, biases and activations rounded to FRACTION_BITS
fractional bits and carried as integer-valued float64, whose sums are exact
(far below 2^53) in any order (Ballé et al. 2019, "Integer networks for data
compression with latent-variable models", make the same point).

A fixed-point tensor is a pair (integer-valued float64 x, scale s) standing
for the real value x / s.
"""

from typing import Sequence, Tuple

import tensorflow as tf
import tensorflow_compression as tfc

FRACTION_BITS = 12
ONE = 2. ** FRACTION_BITS  # The scale of activations between layers.


def _conv_float64(layer: tfc.SignalConv2D, x: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """What `layer` computes ("same_zeros" padding, stride 1 or upsampling), on
  float64 tensors, with the given kernel and without bias or activation."""
  support = layer.kernel_support[0]
  pad = [(0, 0)] + [(support // 2, (support - 1) // 2)] * 2 + [(0, 0)]
  if layer.strides_down[0] != 1:
    raise ValueError("fixed-point layers must not downsample")
  if layer.strides_up[0] == 1:  # SignalConv2D flips the kernel unless it correlates.
    return tf.nn.conv2d(x, kernel if layer.corr else kernel[::-1, ::-1], 1, pad)
  if layer.corr:
    raise ValueError("fixed-point upsampling layers must be convolutions (corr=False)")
  stride = layer.strides_up[0]
  shape = tf.shape(x)
  output_shape = tf.stack([shape[0], shape[1] * stride, shape[2] * stride, layer.filters])
  return tf.nn.conv2d_transpose(x, tf.transpose(kernel, [0, 1, 3, 2]), output_shape,
                                stride, pad)


def exact_conv_stack(layers: Sequence[tfc.SignalConv2D], x: tf.Tensor,
                     x_scale: float = 1.) -> Tuple[tf.Tensor, float]:
  """Runs SignalConv2D layers (ReLU between them, the last one linear) on
  the fixed-point input (x, x_scale). Returns the last layer's exact
  accumulator and its scale, ONE · (scale of that layer's input)."""
  layers = [layer for layer in layers if isinstance(layer, tfc.SignalConv2D)]
  x = tf.cast(x, tf.float64)
  for i, layer in enumerate(layers):
    kernel = tf.round(tf.cast(layer.kernel, tf.float64) * ONE)
    acc = _conv_float64(layer, x, kernel)  # Scale ONE * x_scale.
    if layer.use_bias:
      acc += tf.round(tf.cast(layer.bias, tf.float64) * ONE * x_scale)
    if i == len(layers) - 1:
      if layer.activation not in (None, tf.keras.activations.linear):
        raise ValueError("a fixed-point stack must end in a layer without activation")
      return acc, ONE * x_scale
    if layer.activation is not tf.nn.relu:
      raise ValueError("fixed-point stacks support ReLU activations only")
    x = tf.nn.relu(tf.floor(acc / x_scale + .5))  # Back to scale ONE.
    x_scale = ONE
  raise ValueError("a fixed-point stack needs at least one layer")


def rescale(acc: tf.Tensor, scale: float, new_scale: float = ONE) -> tf.Tensor:
  """A fixed-point tensor at `scale`, rounded to `new_scale` (a power of 2
  no larger): integer-valued float64."""
  return tf.floor(acc * (new_scale / scale) + .5)


def exact_hyper_synthesis(transform: tf.keras.Sequential, z_hat: tf.Tensor) -> tf.Tensor:
  """The hyper-synthesis on integer hyper-latents, rounded to integer
  scale-table indexes that every machine, thread count and CPU kernel choice
  computes identically. Returns float32 integer-valued indexes."""
  acc, scale = exact_conv_stack(transform.layers, z_hat)
  return tf.cast(rescale(acc, scale, 1.), tf.float32)
