"""Inference kernels for the synthesis' up-convolutions: polyphase.

An up-convolution by u ("same_zeros" SignalConv2D, corr=False, strides_up=u)
is u² ordinary stride-1 correlations, one per output phase (p, q): output
(u·i + p, u·j + q) only ever meets the kernel taps r ≡ (k-1-b) + p (mod u)
(b: the layer's leading zero padding), applied to inputs i + offset. So each
phase is a correlation with a sub-kernel (3x3, 3x2, 2x3 or 2x2 taps for 5x5
and u = 2) and the phases are interleaved (depth_to_space): the same
multiply-adds as the transposed convolution, no zero-stuffing, no buffer.

TensorFlow runs the transposed convolution (Conv2DBackpropInput with explicit
padding) on Eigen; the phase correlations run on oneDNN's forward kernels
(when oneDNN is on), which were 1.2x faster for the synthesis' 128-channel
layers on the 2-core AMD EPYC (experiments/transform_kernels.py). Layers with
few output channels (the last, RGB one) keep the transposed convolution,
which oneDNN runs 3-4x slower as phases. Outputs differ from the layer's own
by float summation order only, so decoded pixels may differ by ±1 from
another kernel library's (the decoding contract); latents never see these
kernels.
"""

from typing import List, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

MIN_PHASE_FILTERS = 16  # Below: the layer's own transposed convolution.


def _phase_taps(layer: tfc.SignalConv2D, phase: int) -> List[Tuple[int, int]]:
  """(input offset, kernel tap) pairs of output phase `phase`, by offset."""
  support, up = layer.kernel_support[0], layer.strides_up[0]
  before = (support - 1) // 2  # Leading zero padding of a corr=False layer.
  first = support - 1 - before + phase  # Tap of input offset 0.
  return [(offset, first - up * offset)
          for offset in range(-support, support + 1) if 0 <= first - up * offset < support]


def uses_phases(layer: tf.keras.layers.Layer) -> bool:
  """Whether `up_convolve` computes `layer` as phase correlations."""
  return (isinstance(layer, tfc.SignalConv2D) and not layer.corr
          and layer.padding == "same_zeros" and layer.data_format == "channels_last"
          and layer.strides_up[0] > 1 and len(set(layer.strides_up)) == 1
          and max(layer.strides_down) == 1 and len(set(layer.kernel_support)) == 1
          and layer.kernel_support[0] >= layer.strides_up[0]
          and layer.filters >= MIN_PHASE_FILTERS and layer.compute_dtype == "float32")


def up_convolve(layer: tfc.SignalConv2D, x: tf.Tensor) -> tf.Tensor:
  """`layer(x)` for an up-sampling layer, as phase correlations if
  `uses_phases(layer)` (x: [B, h, w, C] float32)."""
  if not uses_phases(layer):
    return layer(x)
  with tf.name_scope(f"{layer.name}_polyphase"):
    up = layer.strides_up[0]
    taps = [_phase_taps(layer, p) for p in range(up)]
    lead = max(-t[0][0] for t in taps)
    trail = max(t[-1][0] for t in taps)
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    padded = tf.pad(x, [[0, 0], [lead, trail], [lead, trail], [0, 0]])
    kernel = layer.kernel
    phases = []
    for rows in taps:
      row_kernel = tf.gather(kernel, [tap for _, tap in rows], axis=0)
      for cols in taps:
        sub_kernel = tf.gather(row_kernel, [tap for _, tap in cols], axis=1)
        window = padded[:, lead + rows[0][0]:lead + rows[-1][0] + height,
                        lead + cols[0][0]:lead + cols[-1][0] + width]
        phases.append(tf.nn.conv2d(window, sub_kernel, 1, "VALID"))
    y = tf.nn.depth_to_space(tf.concat(phases, -1), up)
    if layer.use_bias:
      y = tf.nn.bias_add(y, layer.bias)
    return layer.activation(y) if layer.activation is not None else y


def buffer_bytes(layer: tfc.SignalConv2D) -> int:
  """Bytes of kernel buffers per input sample of `up_convolve(layer, ·)`:
  the phases, their concatenation and its interleaving (float32 outputs), or
  the transposed convolution's k² columns per output channel."""
  if uses_phases(layer):
    return 3 * 4 * layer.filters * layer.strides_up[0] ** 2
  return 4 * layer.filters * int(np.prod(layer.kernel_support))


def synthesize(transform: tf.keras.Sequential, y: tf.Tensor) -> tf.Tensor:
  """`transform(y)` with its up-convolutions as `up_convolve` computes them."""
  for layer in transform.layers:
    y = up_convolve(layer, y) if isinstance(layer, tfc.SignalConv2D) else layer(y)
  return y
