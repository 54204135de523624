"""Toderici et al. 2017 conv-LSTM variable-rate residual codec.

> "Full Resolution Image Compression with Recurrent Neural Networks"
> G. Toderici, D. Vincent, N. Johnston, S. J. Hwang, D. Minnen, J. Shor,
> M. Covell. CVPR 2017. https://arxiv.org/abs/1608.05148

Each iteration encodes the current residual with a recurrent encoder into
`bits` binary codes per 16x16 block (32 bits = 0.125 bpp before entropy
coding), and a recurrent decoder turns them into an update of the
reconstruction: one-shot (γ=0: the update is the reconstruction), additive
(γ=1: updates add up) or residual scaling (additive, with a learned gain per
iteration applied to the residual and undone on the update). One model serves
every rate: quality = number of iterations, and the bitstream holds one
payload per iteration, so a file cut after K payloads decodes to the K-step
image.

Bits are range coded with a learned context model: the probability that bit
(iteration t, channel c) is +1 given the same bit of iteration t−1 (or no
context at t=0), trained jointly (it sees the codes through a stop-gradient)
and frozen into range-coding tables. A raw mode stores the bits packed.

Training loss over the unrolled iterations (`iteration_loss`, set by
`train --iteration_loss`): "l1", the paper's mean L1 residual, which weighs
the early iterations' large residuals most; or "log-mse", the mean over
iterations of log MSE, i.e. minus the mean PSNR of every rate point the model
serves, so each iteration counts equally in dB.
"""

from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_compression.python.ops import gen_ops

from tfc_codecs.codecs.base import Codec, IMAGE_SPEC, PAYLOADS_SPEC, SHAPE_SPEC, pad_to_multiple, psnr, to_uint8
from tfc_codecs.coding_common import pack_bits, unpack_bits
from tfc_codecs.entropy_models import make_coder
from tfc_codecs.errors import CodecError
from tfc_codecs.layers.precision import Conv2D
from tfc_codecs.layers.recurrent import CELLS, Binarizer

RECONSTRUCTIONS = ("one-shot", "additive", "scaled")
ITERATION_LOSSES = ("l1", "log-mse")  # See the module docstring.
PRECISION = 16  # Range-coder precision for the binary tables.


class RnnCodec(Codec):
  """Conv-RNN residual codec; `width` scales every layer's channel count."""

  codec_name = "rnn"
  downsampling = 16
  progressive = True
  needs_lambda = False
  default_iterations = 8
  tile_size = 1024  # Part of the file format: tiles are coded independently.
  iteration_loss = "l1"  # In training: one of ITERATION_LOSSES.

  def __init__(self, width: float = 1.0, bits: int = 32, cell: str = "lstm",
               reconstruction: str = "additive", max_iterations: int = 16,
               train_iterations: int = 8):
    if cell not in CELLS or reconstruction not in RECONSTRUCTIONS:
      raise CodecError(f"rnn: cell must be one of {sorted(CELLS)} and "
                       f"reconstruction one of {RECONSTRUCTIONS}")
    super().__init__(width=width, bits=bits, cell=cell, reconstruction=reconstruction,
                     max_iterations=max_iterations, train_iterations=train_iterations)
    channels = lambda n: 4 * max(1, int(round(n * width / 4)))
    cell_class = CELLS[cell]
    self.bits = bits
    self.max_iterations = max_iterations
    self.num_qualities = max_iterations
    self.default_quality = self.default_iterations
    self.train_iterations = train_iterations
    self.reconstruction = reconstruction
    self.encoder_conv = Conv2D(
        channels(64), 3, strides=2, padding="same", name="encoder_conv")
    self.encoder_cells = [
        cell_class(channels(256), 3, 2, 1, name="encoder_rnn_1"),
        cell_class(channels(512), 3, 2, 1, name="encoder_rnn_2"),
        cell_class(channels(512), 3, 2, 1, name="encoder_rnn_3")]
    self.binarizer = Binarizer(bits, name="binarizer")
    self.decoder_conv = Conv2D(channels(512), 1, name="decoder_conv")
    self.decoder_cells = [
        cell_class(channels(512), 2, 1, 1, name="decoder_rnn_1"),
        cell_class(channels(512), 3, 1, 1, name="decoder_rnn_2"),
        cell_class(channels(256), 3, 1, 3, name="decoder_rnn_3"),
        cell_class(channels(128), 3, 1, 3, name="decoder_rnn_4")]
    self.decoder_out = Conv2D(3, 1, name="decoder_out")
    self.context_logits = self.add_weight(
        name="context_logits", shape=[max_iterations, bits, 3], initializer="zeros")
    self.log_gains = self.add_weight(
        name="log_gains", shape=[max_iterations], initializer="zeros",
        trainable=reconstruction == "scaled")
    self.cdf = None
    self.entropy_coder = None
    self._build_codec()

  # The recurrence -------------------------------------------------------
  def _zero_states(self, x):
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]

    def zeros(cell, stride):
      z = tf.zeros(tf.stack([batch, height // stride, width // stride, cell.filters]))
      return z, z

    return ([zeros(c, s) for c, s in zip(self.encoder_cells, (4, 8, 16))],
            [zeros(c, s) for c, s in zip(self.decoder_cells, (16, 8, 4, 2))])

  def _gain(self, t):
    return tf.exp(tf.gather(self.log_gains, t))

  def _encode(self, residual, t, states, training):
    if self.reconstruction == "scaled":
      residual *= self._gain(t)
    y = self.encoder_conv(residual)
    new_states = []
    for cell, state in zip(self.encoder_cells, states):
      y, state = cell(y, state)
      new_states.append(state)
    return self.binarizer(y, training=training), new_states

  def _decode(self, codes, t, x_hat, states):
    y = self.decoder_conv(codes)
    new_states = []
    for cell, state in zip(self.decoder_cells, states):
      y, state = cell(y, state)
      new_states.append(state)
      y = tf.nn.depth_to_space(y, 2)
    update = tf.tanh(self.decoder_out(y)) / 2.
    if self.reconstruction == "one-shot":
      return update, new_states
    if self.reconstruction == "scaled":
      update /= self._gain(t)
    return x_hat + update, new_states

  def _context_index(self, t, previous01):
    """Table index per code: (iteration, channel, previous bit or none)."""
    context = tf.where(t > 0, previous01, 2 * tf.ones_like(previous01))
    channel = tf.range(self.bits)
    return (t * self.bits + channel) * 3 + context

  def _code_bits(self, t, codes01, previous01):
    """Information content in bits of {0,1} codes under the context model."""
    logits = tf.gather(tf.reshape(self.context_logits, [-1]),
                       self._context_index(t, previous01))
    signs = 2. * tf.cast(codes01, tf.float32) - 1.
    return tf.reduce_sum(tf.math.softplus(-signs * logits)) / np.log(2.)

  def _iterate(self, x, iterations, training):
    """x in [-0.5, 0.5] -> per-iteration reconstructions and code bits."""
    encoder_states, decoder_states = self._zero_states(x)
    x_hat = tf.zeros_like(x)
    previous = tf.zeros(tf.concat([tf.shape(x)[:1], tf.shape(x)[1:3] // 16,
                                   [self.bits]], 0), tf.int32)
    reconstructions, bits = [], []
    for t in range(iterations):
      codes, encoder_states = self._encode(x - x_hat, t, encoder_states, training)
      x_hat, decoder_states = self._decode(codes, t, x_hat, decoder_states)
      codes01 = tf.cast(tf.stop_gradient(codes) > 0, tf.int32)
      bits.append(self._code_bits(t, codes01, previous))
      previous = codes01
      reconstructions.append(x_hat)
    return reconstructions, bits

  # Training -------------------------------------------------------------
  def _forward(self, x, training):
    reconstructions, bits = self._iterate(x / 255. - 0.5, self.train_iterations, training)
    batch = tf.cast(tf.shape(x)[0], tf.float32)
    return (reconstructions[-1] + 0.5) * 255., tf.fill([tf.shape(x)[0]], tf.add_n(bits) / batch)

  def training_loss(self, x, lmbda, distortion="mse"):
    """Distortion over the unrolled iterations (`iteration_loss`), plus the
    context model's code length (which trains only the context model)."""
    del lmbda, distortion  # The rate is set by the number of iterations.
    x01 = x / 255. - 0.5
    reconstructions, bits = self._iterate(x01, self.train_iterations, training=True)
    if self.iteration_loss == "log-mse":
      mses = [tf.reduce_mean(tf.math.squared_difference(x01, r)) for r in reconstructions]
      distortion_loss = tf.add_n([tf.math.log(m) for m in mses]) / len(mses)
    else:
      distortion_loss = tf.add_n(
          [tf.reduce_mean(tf.abs(x01 - r)) for r in reconstructions]) / len(reconstructions)
    num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
    bpp = tf.add_n(bits) / num_pixels
    mse = tf.reduce_mean(tf.math.squared_difference(x01, reconstructions[-1])) * 255. ** 2
    return distortion_loss + 1e-3 * bpp, dict(bpp=bpp, mse=mse, psnr=psnr(mse))

  # Range-coding tables --------------------------------------------------
  def freeze(self) -> None:
    probabilities = tf.reshape(tf.sigmoid(self.context_logits), [-1])
    probabilities = tf.clip_by_value(probabilities, 2. ** -12, 1. - 2. ** -12)
    tables = []
    for p in probabilities.numpy():
      pmf = tf.constant([1. - p, p, 0.], tf.float32)
      tables += [[-PRECISION], gen_ops.pmf_to_quantized_cdf(pmf, precision=PRECISION).numpy()]
    self.set_entropy_tables(dict(cdf=np.concatenate(tables).astype(np.int32)))

  def entropy_tables(self) -> Dict[str, np.ndarray]:
    return dict(cdf=self.cdf.numpy())

  def set_entropy_tables(self, tables: Dict[str, np.ndarray]) -> None:
    self.cdf = tf.constant(tables["cdf"], tf.int32)
    self.entropy_coder = make_coder(self.ops, tables["cdf"])

  @property
  def coder(self):
    return self.cdf

  # Compression ----------------------------------------------------------
  # Images are coded as independent tiles of at most `tile_size` pixels a side
  # (raster order), so memory stays bounded on any image size. Payload t holds
  # the iteration-t bits of every tile, so files stay progressive.
  def _tile_grid(self, padded_shape):
    """(tile rows, tile columns, number of tiles) of a padded image."""
    rows = -(-padded_shape[0] // self.tile_size)
    cols = -(-padded_shape[1] // self.tile_size)
    return rows, cols, rows * cols

  def _tile_box(self, index, cols, padded_shape):
    """Top, left, height, width of tile `index` of the padded image."""
    top = (index // cols) * self.tile_size
    left = (index % cols) * self.tile_size
    return (top, left, tf.minimum(self.tile_size, padded_shape[0] - top),
            tf.minimum(self.tile_size, padded_shape[1] - left))

  def _code_context(self, t, previous01):
    """Table index per code of a flat (position, channel) code vector."""
    context = tf.where(t > 0, previous01, 2 * tf.ones_like(previous01))
    channel = tf.range(tf.size(previous01)) % self.bits
    return (t * self.bits + channel) * 3 + context

  @staticmethod
  def _paste(canvas, tile, top, left):
    """`canvas` [H, W, ...] with `tile` [h, w, ...] written at (top, left)."""
    rows = tf.range(top, top + tf.shape(tile)[0])
    cols = tf.range(left, left + tf.shape(tile)[1])
    grid = tf.stack(tf.meshgrid(rows, cols, indexing="ij"), axis=-1)
    return tf.tensor_scatter_nd_update(canvas, grid, tile)

  def _run_encoder(self, image, iterations, raw, reconstruction=False):
    """Payloads [iterations] and, if `reconstruction`, the encoder's own
    reconstruction (uint8). Only one tile at a time is held in float."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    padded = pad_to_multiple(image[None], 16)[0]
    padded_shape = tf.shape(padded)[:2]
    _, cols, num_tiles = self._tile_grid(padded_shape)
    tile_codes = tf.TensorArray(tf.int32, size=num_tiles, infer_shape=False,
                                element_shape=tf.TensorShape([None, None]))
    canvas = tf.zeros_like(padded) if reconstruction else tf.zeros([0, 0, 3], tf.uint8)
    for index in tf.range(num_tiles):
      top, left, tile_h, tile_w = self._tile_box(index, cols, padded_shape)
      tile = tf.cast(padded[None, top:top + tile_h, left:left + tile_w], tf.float32) / 255. - 0.5
      encoder_states, decoder_states = self._zero_states(tile)
      x_hat = tf.zeros_like(tile)
      codes_t = tf.TensorArray(tf.int32, size=iterations)
      for t in tf.range(iterations):
        codes, encoder_states = self._encode(tile - x_hat, t, encoder_states, False)
        x_hat, decoder_states = self._decode(codes, t, x_hat, decoder_states)
        codes_t = codes_t.write(t, tf.reshape(tf.cast(codes > 0, tf.int32), [-1]))
      tile_codes = tile_codes.write(index, tf.transpose(codes_t.stack()))
      if reconstruction:
        canvas = self._paste(canvas, to_uint8((x_hat[0] + 0.5) * 255.), top, left)
    codes01 = tf.transpose(tile_codes.concat())  # [iterations, all tiles' codes]
    strings = tf.TensorArray(tf.string, size=iterations)
    previous = tf.zeros_like(codes01[0])
    for t in tf.range(iterations):
      if raw:
        string = pack_bits(codes01[t])
      else:
        string = self.entropy_coder.encode(codes01[t], self._code_context(t, previous))
      strings = strings.write(t, string)
      previous = codes01[t]
    return strings.stack(), canvas[:height, :width]

  @tf.function(input_signature=[IMAGE_SPEC, tf.TensorSpec([], tf.int32)])
  def compress(self, image, iterations):
    """uint8 [H, W, 3] -> one range-coded payload per iteration."""
    return self._run_encoder(image, iterations, raw=False)[0]

  @tf.function(input_signature=[IMAGE_SPEC, tf.TensorSpec([], tf.int32)])
  def compress_raw(self, image, iterations):
    """uint8 [H, W, 3] -> one payload of packed bits per iteration."""
    return self._run_encoder(image, iterations, raw=True)[0]

  @tf.function(input_signature=[IMAGE_SPEC, tf.TensorSpec([], tf.int32)])
  def reconstruct(self, image, iterations):
    """The encoder's own reconstruction after `iterations`, and its code bits."""
    x_hat = self._run_encoder(image, iterations, raw=True, reconstruction=True)[1]
    padded = -(-tf.shape(image)[:2] // 16)
    bits = tf.cast(iterations * self.bits * tf.reduce_prod(padded), tf.float32)
    return x_hat, bits

  def _run_decoder(self, payloads, image_shape, raw, every_step=False):
    """uint8 [H, W, 3] image of the payloads; with `every_step`, the image after
    each iteration, [iterations, H, W, 3]."""
    padded_shape = -(-image_shape // 16) * 16
    _, cols, num_tiles = self._tile_grid(padded_shape)
    iterations = tf.size(payloads)
    count = tf.reduce_prod(padded_shape // 16) * self.bits
    codes_t = tf.TensorArray(tf.int32, size=iterations)
    previous = tf.zeros([count], tf.int32)
    for t in tf.range(iterations):
      if raw:
        codes01 = unpack_bits(payloads[t], [count])
      else:
        # A corrupt payload may decode escapes: keep the codes binary.
        codes01 = tf.clip_by_value(self.entropy_coder.decode(
            payloads[t], self._code_context(t, previous)), 0, 1)
      codes_t = codes_t.write(t, codes01)
      previous = codes01
    codes01 = codes_t.stack()  # [iterations, all tiles' codes]
    # Canvas [H, W, 3], or [H, W, iterations, 3] with every step.
    steps_shape = [iterations] if every_step else []
    canvas = tf.zeros(tf.concat([padded_shape, steps_shape, [3]], 0), tf.uint8)
    offset = 0
    for index in tf.range(num_tiles):
      top, left, tile_h, tile_w = self._tile_box(index, cols, padded_shape)
      size = (tile_h // 16) * (tile_w // 16) * self.bits
      tile_codes = tf.reshape(codes01[:, offset:offset + size],
                              [iterations, 1, tile_h // 16, tile_w // 16, self.bits])
      x_hat = tf.zeros([1, tile_h, tile_w, 3])
      _, decoder_states = self._zero_states(x_hat)
      steps = tf.TensorArray(tf.uint8, size=iterations if every_step else 0)
      for t in tf.range(iterations):
        codes = 2. * tf.cast(tile_codes[t], tf.float32) - 1.
        x_hat, decoder_states = self._decode(codes, t, x_hat, decoder_states)
        if every_step:
          steps = steps.write(t, to_uint8((x_hat[0] + 0.5) * 255.))
      tile = (tf.transpose(steps.stack(), [1, 2, 0, 3]) if every_step
              else to_uint8((x_hat[0] + 0.5) * 255.))
      canvas = self._paste(canvas, tile, top, left)
      offset += size
    canvas = canvas[:image_shape[0], :image_shape[1]]
    return tf.transpose(canvas, [2, 0, 1, 3]) if every_step else canvas

  @tf.function(input_signature=[PAYLOADS_SPEC, SHAPE_SPEC])
  def decompress(self, payloads, image_shape):
    """Range-coded payloads (any number of iterations) -> uint8 image."""
    return self._run_decoder(payloads, image_shape, raw=False)

  @tf.function(input_signature=[PAYLOADS_SPEC, SHAPE_SPEC])
  def decompress_raw(self, payloads, image_shape):
    """Packed-bit payloads -> uint8 image."""
    return self._run_decoder(payloads, image_shape, raw=True)

  @tf.function(input_signature=[PAYLOADS_SPEC, SHAPE_SPEC])
  def decompress_steps(self, payloads, image_shape):
    """Range-coded payloads -> the image after each iteration, uint8
    [iterations, H, W, 3] (step k is what `decompress` gives for k payloads)."""
    return self._run_decoder(payloads, image_shape, raw=False, every_step=True)

  def _compress_padded(self, x):
    raise NotImplementedError("use compress(image, iterations)")

  def _decompress_padded(self, payloads, padded_shape):
    raise NotImplementedError("use decompress(payloads, image_shape)")
