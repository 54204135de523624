"""Convolutional recurrent cells and the stochastic binarizer (Toderici 2017).

> "Full Resolution Image Compression with Recurrent Neural Networks"
> G. Toderici, D. Vincent, N. Johnston, S. J. Hwang, D. Minnen, J. Shor,
> M. Covell. CVPR 2017. https://arxiv.org/abs/1608.05148

The cells are stateless Keras layers: `cell(x, state) -> (output, state)`,
with the state a (hidden, cell) pair of tensors the caller threads through
the iterations (zeros at the start of each image; a GRU ignores the second).
State None is the zero state: the same output, without the hidden
convolutions (whose output it would make exactly zero).
"""

import tensorflow as tf

from tfc_codecs.layers.precision import Conv2D


class ConvLSTM(tf.keras.layers.Layer):
  """LSTM whose gates are conv(input, stride) + conv(hidden)."""

  def __init__(self, filters: int, kernel: int = 3, stride: int = 1,
               hidden_kernel: int = 1, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.input_conv = Conv2D(
        4 * filters, kernel, strides=stride, padding="same", name="input_conv")
    self.hidden_conv = Conv2D(
        4 * filters, hidden_kernel, padding="same", use_bias=False,
        name="hidden_conv")

  def call(self, x, state=None):
    gates = self.input_conv(x)
    if state is not None:
      gates += self.hidden_conv(state[0])
    i, f, o, g = tf.split(gates, 4, axis=-1)
    cell = tf.sigmoid(i) * tf.tanh(g)
    if state is not None:
      cell = tf.sigmoid(f) * state[1] + cell
    hidden = tf.sigmoid(o) * tf.tanh(cell)
    return hidden, (hidden, cell)


class ConvGRU(tf.keras.layers.Layer):
  """GRU whose gates are conv(input, stride) + conv(hidden); same interface."""

  def __init__(self, filters: int, kernel: int = 3, stride: int = 1,
               hidden_kernel: int = 1, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.input_conv = Conv2D(
        3 * filters, kernel, strides=stride, padding="same", name="input_conv")
    self.hidden_gates = Conv2D(
        2 * filters, hidden_kernel, padding="same", use_bias=False, name="hidden_gates")
    self.hidden_candidate = Conv2D(
        filters, hidden_kernel, padding="same", use_bias=False, name="hidden_candidate")

  def call(self, x, state=None):
    x_r, x_z, x_n = tf.split(self.input_conv(x), 3, axis=-1)
    if state is None:
      hidden = tf.sigmoid(x_z) * tf.tanh(x_n)
      return hidden, (hidden, hidden)
    hidden, unused = state
    h_r, h_z = tf.split(self.hidden_gates(hidden), 2, axis=-1)
    reset = tf.sigmoid(x_r + h_r)
    update = tf.sigmoid(x_z + h_z)
    candidate = tf.tanh(x_n + self.hidden_candidate(reset * hidden))
    hidden = (1. - update) * hidden + update * candidate
    return hidden, (hidden, unused)


CELLS = {"lstm": ConvLSTM, "gru": ConvGRU}


class Binarizer(tf.keras.layers.Layer):
  """1x1 conv to `bits` channels, tanh, then binarization to {-1, +1}.

  Stochastic (the paper's, in training): b = +1 with probability (1 + x) / 2,
  so E[b] = x. Otherwise (inference, and `train --binarization sign`): sign,
  with sign(0) = +1, which is deterministic. Either way the gradient is the
  straight-through identity.
  """

  def __init__(self, bits: int, **kwargs):
    super().__init__(**kwargs)
    self.conv = Conv2D(bits, 1, use_bias=False, name="conv")

  def call(self, x, training=False):
    return self.binarize(x, stochastic=training)[0]

  def binarize(self, x, stochastic: bool = False):
    """(codes ±1 for the decoder; the {0, 1} int32 bits that inference codes
    for the same input, i.e. the signs)."""
    x = tf.tanh(self.conv(x))
    signs = tf.where(x >= 0., 1., -1.)
    if stochastic:
      probability = (1. + x) / 2.
      sample = tf.where(tf.random.uniform(tf.shape(x)) < probability, 1., -1.)
    else:
      sample = signs
    codes = sample + (x - tf.stop_gradient(x))  # Exactly ±1, gradient of x.
    return codes, tf.cast(signs > 0, tf.int32)
