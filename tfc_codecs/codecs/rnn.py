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

Bits are range coded with a learned context model (`context`), trained
jointly and frozen into range-coding tables. It learns from the bits that
inference codes (the signs of the binarizer's input), not from training's
stochastic codes, which are less predictable; it cannot move the transforms:
- "channels" (new models): a logistic model per channel c of iteration t,
  whose logit is a bias per (t, c) plus weighted ±1 bits of iteration t−1 at
  the same position (all 32) and of channels 0..c−1 of iteration t there.
  Frozen, its weights are integers (1/64 logit), so encoder and decoder
  compute bit-identical contexts on any machine, and a logit picks one of 65
  tables (logits −8, −7.75, ..., 8). Each iteration's payload codes channel
  by channel, and the decoder decodes a channel at every position at once
  (`decode_chunks` of the entropy coder). On BSDS500 codes this saves about
  11% over raw bits, against 0.5% for "previous"
  (`experiments/rnn_bit_context.py`).
- "previous" (models made before it, which load and decode as they did): the
  probability that bit (t, c) is 1 given the same bit of iteration t−1 (or
  no context at t=0).
A raw mode stores the bits packed.

Training loss over the unrolled iterations (`iteration_loss`, set by
`train --iteration_loss`): "l1", the paper's mean L1 residual, which weighs
the early iterations' large residuals most; or "log-mse", the mean over
iterations of log MSE, i.e. minus the mean PSNR of every rate point the model
serves, so each iteration counts equally in dB.

Binarization in training (`binarization`, set by `train --binarization`):
"stochastic", the paper's, whose late-iteration codes flip often (a noisy
channel the decoder learns to distrust), or "sign", the codes inference sends,
so training sees exactly the noiseless channel it will be used with.
"""

from typing import Dict, List, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_compression.python.ops import gen_ops

from tfc_codecs.codecs.base import Codec, IMAGE_SPEC, PAYLOADS_SPEC, SHAPE_SPEC, pad_to_multiple, psnr, to_uint8
from tfc_codecs.codecs.options import Option
from tfc_codecs.entropy_coding.byte_strings import pack_bits, unpack_bits
from tfc_codecs.entropy_coding.entropy_models import make_coder
from tfc_codecs.errors import CodecError
from tfc_codecs.layers.precision import Conv2D
from tfc_codecs.layers.recurrent import CELLS, Binarizer

RECONSTRUCTIONS = ("one-shot", "additive", "scaled")
CONTEXTS = ("previous", "channels")  # Bit context models, see the module docstring.
ITERATION_LOSSES = ("l1", "log-mse")  # See the module docstring.
BINARIZATIONS = ("stochastic", "sign")  # Training's binarization, see the module docstring.
PRECISION = 16  # Range-coder precision for the binary tables.
LOGIT_UNITS = 64  # A frozen "channels" context weight is an integer number of 1/64 logits.
LOGIT_LEVELS = 65  # Its tables: logits −8 to 8 in steps of 1/4 (16 units).
# The "channels" weights are stored divided by this, so that they learn this
# much faster than the transforms under the shared optimizer (Adam moves a
# weight about the learning rate per step, whatever its gradient's scale).
CONTEXT_LR_MULTIPLIER = 32.


class RnnCodec(Codec):
  """Conv-RNN residual codec; `width` scales every layer's channel count."""

  codec_name = "rnn"
  downsampling = 16
  progressive = True
  needs_lambda = False
  distortions = ("mse",)  # Its own losses (`iteration_loss`) stand for the MSE.
  default_iterations = 8
  tile_size = 1024  # Part of the file format: tiles are coded independently.
  iteration_loss = "l1"  # In training: one of ITERATION_LOSSES.
  binarization = "stochastic"  # In training: one of BINARIZATIONS.
  model_options = (
      Option("width", "Channel-count multiplier of Toderici's widths (default 1.0); with "
             "--init_from a narrower rnn, widens it.", float),
      Option("train_iterations", "Iterations unrolled in training (default 8).", int),
      Option("cell", "Recurrent cell (default lstm).", choices=tuple(sorted(CELLS))),
      Option("reconstruction", "gamma = 0 (one-shot), gamma = 1 (additive, the default), or "
             "additive with residual scaling (scaled).", choices=RECONSTRUCTIONS))
  training_options = (
      Option("iteration_loss", "Mean L1 residual over the iterations (l1, the paper's), or "
             "mean log MSE, which weighs every iteration's PSNR equally (log-mse).",
             choices=ITERATION_LOSSES),
      Option("binarization", "Binarize codes in training stochastically (the paper's), or "
             "by sign, as inference does.", choices=BINARIZATIONS))
  stored_config_defaults = {"context": "previous"}  # Models stored before "channels".

  def __init__(self, width: float = 1.0, bits: int = 32, cell: str = "lstm",
               reconstruction: str = "additive", max_iterations: int = 16,
               train_iterations: int = 8, context: str = "channels"):
    if cell not in CELLS or reconstruction not in RECONSTRUCTIONS or context not in CONTEXTS:
      raise CodecError(f"rnn: cell must be one of {sorted(CELLS)}, reconstruction one "
                       f"of {RECONSTRUCTIONS} and context one of {CONTEXTS}")
    super().__init__(width=width, bits=bits, cell=cell, reconstruction=reconstruction,
                     max_iterations=max_iterations, train_iterations=train_iterations,
                     context=context)
    channels = lambda n: 4 * max(1, int(round(n * width / 4)))
    cell_class = CELLS[cell]
    self.bits = bits
    self.max_iterations = max_iterations
    self.num_qualities = max_iterations
    self.default_quality = self.default_iterations
    self.train_iterations = train_iterations
    self.reconstruction = reconstruction
    self.context = context
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
    if context == "previous":
      self.context_logits = self.add_weight(
          name="context_logits", shape=[max_iterations, bits, 3], initializer="zeros")
    else:
      self.context_bias = self.add_weight(
          name="context_bias", shape=[max_iterations, bits], initializer="zeros")
      self.context_weights = self.add_weight(  # [channel, previous bits + this iteration's].
          name="context_weights", shape=[bits, 2 * bits], initializer="zeros")
      self._context_mask = tf.constant(np.concatenate(
          [np.ones([bits, bits]), np.tril(np.ones([bits, bits]), -1)], 1), tf.float32)
    self.log_gains = self.add_weight(
        name="log_gains", shape=[max_iterations], initializer="zeros",
        trainable=reconstruction == "scaled")
    self.coder = None  # The entropy coder of the bits, with the frozen tables.
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

  @staticmethod
  def _step(step, t, states):
    """`step(states)` of iteration t (a tensor); at t = 0 `step(None)`: the
    zero states, whose hidden convolutions the cells skip."""
    return tf.cond(t > 0, lambda: step(states), lambda: step(None))

  def _encode(self, residual, t, states, training):
    """(codes ±1 for the decoder, the {0, 1} bits inference codes, states);
    states None: the zero states."""
    if self.reconstruction == "scaled":
      residual *= self._gain(t)
    y = self.encoder_conv(residual)
    new_states = []
    for cell, state in zip(self.encoder_cells, states or [None] * len(self.encoder_cells)):
      y, state = cell(y, state)
      new_states.append(state)
    codes, bits01 = self.binarizer.binarize(
        y, stochastic=training and self.binarization == "stochastic")
    return codes, bits01, new_states

  def _decode(self, codes, t, x_hat, states):
    """(reconstruction after iteration t, states); states None: the zero states."""
    y = self.decoder_conv(codes)
    new_states = []
    for cell, state in zip(self.decoder_cells, states or [None] * len(self.decoder_cells)):
      y, state = cell(y, state)
      new_states.append(state)
      y = tf.nn.depth_to_space(y, 2)
    update = tf.tanh(self.decoder_out(y)) / 2.
    if self.reconstruction == "one-shot":
      return update, new_states
    if self.reconstruction == "scaled":
      update /= self._gain(t)
    return x_hat + update, new_states

  def code_logits(self, t, codes01: tf.Tensor, previous01: tf.Tensor) -> tf.Tensor:
    """The context model's logits [..., bits] that each of the {0,1} codes
    [..., bits] of iteration t is 1, given them and iteration t−1's."""
    if self.context == "previous":
      context = tf.where(t > 0, previous01, 2 * tf.ones_like(previous01))
      index = (t * self.bits + tf.range(self.bits)) * 3 + context
      return tf.gather(tf.reshape(self.context_logits, [-1]), index)
    features = tf.concat([_signs(previous01) * tf.cast(t > 0, tf.float32), _signs(codes01)], -1)
    weights = self.context_weights * self._context_mask
    return CONTEXT_LR_MULTIPLIER * (tf.linalg.matvec(weights, features)
                                    + tf.gather(self.context_bias, t))

  def _code_bits(self, t, codes01, previous01):
    """Information content in bits of {0,1} codes under the context model."""
    logits = self.code_logits(t, codes01, previous01)
    return tf.reduce_sum(tf.math.softplus(-_signs(codes01) * logits)) / np.log(2.)

  def _iterate(self, x, iterations, training):
    """x in [-0.5, 0.5] -> per-iteration reconstructions and code bits."""
    encoder_states = decoder_states = None  # The zero states.
    x_hat = tf.zeros_like(x)
    previous = tf.zeros(tf.concat([tf.shape(x)[:1], tf.shape(x)[1:3] // 16,
                                   [self.bits]], 0), tf.int32)
    reconstructions, bits = [], []
    for t in range(iterations):
      codes, codes01, encoder_states = self._encode(x - x_hat, t, encoder_states, training)
      x_hat, decoder_states = self._decode(codes, t, x_hat, decoder_states)
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

  # Widening (`train --init_from rnn --width W`) ---------------------------
  def carry_over(self, part, values, source):
    """A narrower source model's weights, embedded so that this wider model
    starts out computing exactly what the source did: each source unit keeps
    its weights, weights from new units into old ones start at zero, and new
    units keep their initial weights (so they learn from the first step)."""
    if source.config["cell"] != self.config["cell"]:  # Else only the plain convs would carry.
      raise CodecError(f"rnn: cannot start a model with {self.config['cell']} cells from "
                       f"one with {source.config['cell']} cells")
    if source.config["width"] == self.config["width"]:
      return super().carry_over(part, values, source)
    if source.config["width"] > self.config["width"]:
      raise CodecError(f"rnn: cannot narrow a width-{source.config['width']} model to "
                       f"width {self.config['width']}; --init_from only widens")
    maps = self._widening_maps(source)
    if part not in maps:  # Gains and context model: per iteration and bit, not per unit.
      return values
    layer, channel_maps = maps[part]
    return [_embed(value, variable.numpy(), *channel_maps(variable))
            for value, variable in zip(values, layer.trainable_variables)]

  def _widening_maps(self, source):
    """Part -> (this model's layer, variable -> (input map, output map)): the
    channels where the narrower `source`'s inputs and units sit."""
    def units(layer, narrow_layer, shuffled=False):
      """Where the narrow layer's unit k sits; `shuffled`: a depth_to_space(2)
      follows, whose output channel c is unit c of each quarter."""
      narrow = narrow_layer.filters
      k = np.arange(narrow)
      return (k // (narrow // 4)) * (layer.filters // 4) + k % (narrow // 4) if shuffled else k

    def plain(layer, inputs, outputs):
      return layer, lambda variable: (inputs, outputs)

    def cell(layer, inputs, unit_map):
      def channel_maps(variable):  # Gates are stacked on the output axis.
        gates = variable.shape[-1] // layer.filters
        outputs = np.concatenate([g * layer.filters + unit_map for g in range(gates)])
        return (inputs if "input_conv" in variable.name else unit_map), outputs
      return layer, channel_maps

    previous = units(self.encoder_conv, source.encoder_conv)
    maps = {"encoder_conv": plain(self.encoder_conv, np.arange(3), previous)}
    for index, (layer, narrow) in enumerate(zip(self.encoder_cells, source.encoder_cells)):
      unit_map = units(layer, narrow)
      maps[f"encoder_cells/{index}"] = cell(layer, previous, unit_map)
      previous = unit_map
    bits = np.arange(self.bits)
    maps["binarizer"] = plain(self.binarizer, previous, bits)
    previous = units(self.decoder_conv, source.decoder_conv)
    maps["decoder_conv"] = plain(self.decoder_conv, bits, previous)
    for index, (layer, narrow) in enumerate(zip(self.decoder_cells, source.decoder_cells)):
      maps[f"decoder_cells/{index}"] = cell(layer, previous, units(layer, narrow, shuffled=True))
      previous = np.arange(narrow.filters // 4)  # After depth_to_space.
    maps["decoder_out"] = plain(self.decoder_out, previous, np.arange(3))
    return maps

  # Range-coding tables --------------------------------------------------
  def freeze(self) -> None:
    if self.context == "previous":
      self.set_entropy_tables(dict(cdf=_binary_tables(tf.sigmoid(self.context_logits))))
      return
    units = CONTEXT_LR_MULTIPLIER * LOGIT_UNITS
    weights = self.context_weights * self._context_mask
    self.set_entropy_tables(dict(
        cdf=_binary_tables(tf.sigmoid((tf.range(LOGIT_LEVELS, dtype=tf.float32)
                                       - LOGIT_LEVELS // 2) / 4.)),
        context_weights=np.round(units * weights.numpy()).astype(np.int32),
        context_bias=np.round(units * self.context_bias.numpy()).astype(np.int32)))

  def entropy_tables(self) -> Dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in self._tables.items()}

  def set_entropy_tables(self, tables: Dict[str, np.ndarray]) -> None:
    self._tables = {k: tf.constant(v, tf.int32) for k, v in tables.items()}
    self.coder = make_coder(self.ops, tables["cdf"])

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
    """"previous": table index per code of a flat (position, channel) code vector."""
    context = tf.where(t > 0, previous01, 2 * tf.ones_like(previous01))
    channel = tf.range(tf.size(previous01)) % self.bits
    return (t * self.bits + channel) * 3 + context

  def _channel_logits(self, t, previous01):
    """"channels": integer logits [positions, bits] of iteration t's codes
    from iteration t−1's codes [positions, bits] (and the bias), before the
    terms of the channels below."""
    previous = _int_signs(previous01) * tf.cast(t > 0, tf.int32)
    weights = self._tables["context_weights"][:, :self.bits]
    return (tf.linalg.matmul(previous, weights, transpose_b=True)
            + tf.gather(self._tables["context_bias"], t))

  def _channel_table(self, logits):
    """"channels": the table of integer logits."""
    step = LOGIT_UNITS // 4
    return tf.clip_by_value((logits + (LOGIT_LEVELS // 2) * step + step // 2) // step,
                            0, LOGIT_LEVELS - 1)

  def _encode_iteration(self, t, codes01, previous01):
    """Payload of iteration t's {0,1} codes [positions, bits]."""
    if self.context == "previous":
      return self.coder.encode(
          tf.reshape(codes01, [-1]), self._code_context(t, tf.reshape(previous01, [-1])))
    lower = self._tables["context_weights"][:, self.bits:]
    logits = (self._channel_logits(t, previous01)
              + tf.linalg.matmul(_int_signs(codes01), lower, transpose_b=True))
    return self.coder.encode_chunks(tf.transpose(codes01),
                                            tf.transpose(self._channel_table(logits)))

  def _decode_iteration(self, t, payload, previous01):
    """Inverse of `_encode_iteration`: codes [positions, bits]. A corrupt
    payload decodes to {0, 1} codes too (escapes are clipped)."""
    if self.context == "previous":
      codes01 = self.coder.decode(
          payload, self._code_context(t, tf.reshape(previous01, [-1])))
      return tf.clip_by_value(tf.reshape(codes01, tf.shape(previous01)), 0, 1)
    base = self._channel_logits(t, previous01)
    lower = self._tables["context_weights"][:, self.bits:]

    def channel_table(c, decoded):  # decoded: channels < c, [c, positions].
      signs = _int_signs(tf.minimum(decoded, 1))
      return self._channel_table(base[:, c] + tf.linalg.matvec(signs, lower[c, :c],
                                                               transpose_a=True))

    codes01 = self.coder.decode_chunks(
        payload, self.bits, tf.shape(previous01)[0], channel_table)
    return tf.clip_by_value(tf.transpose(codes01), 0, 1)

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
        codes, codes01, encoder_states = self._step(
            lambda states: self._encode(tile - x_hat, t, states, False), t, encoder_states)
        if reconstruction or t < iterations - 1:  # Else nothing needs this update.
          x_hat, decoder_states = self._step(
              lambda states: self._decode(codes, t, x_hat, states), t, decoder_states)
        codes_t = codes_t.write(t, tf.reshape(codes01, [-1]))
      tile_codes = tile_codes.write(index, tf.transpose(codes_t.stack()))
      if reconstruction:
        canvas = self._paste(canvas, to_uint8((x_hat[0] + 0.5) * 255.), top, left)
    codes01 = tf.transpose(tile_codes.concat())  # [iterations, all tiles' codes]
    strings = tf.TensorArray(tf.string, size=iterations)
    previous = tf.zeros_like(tf.reshape(codes01[0], [-1, self.bits]))
    for t in tf.range(iterations):
      codes = tf.reshape(codes01[t], [-1, self.bits])
      string = pack_bits(codes01[t]) if raw else self._encode_iteration(t, codes, previous)
      strings = strings.write(t, string)
      previous = codes
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
    previous = tf.zeros([count // self.bits, self.bits], tf.int32)
    for t in tf.range(iterations):
      if raw:
        codes01 = tf.reshape(unpack_bits(payloads[t], [count]), [-1, self.bits])
      else:
        codes01 = self._decode_iteration(t, payloads[t], previous)
      codes_t = codes_t.write(t, tf.reshape(codes01, [-1]))
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
        x_hat, decoder_states = self._step(
            lambda states: self._decode(codes, t, x_hat, states), t, decoder_states)
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


def _signs(codes01):
  """{0, 1} codes -> float ±1."""
  return 2. * tf.cast(codes01, tf.float32) - 1.


def _int_signs(codes01):
  """{0, 1} codes -> int32 ±1."""
  return 2 * tf.cast(codes01, tf.int32) - 1


def _embed(narrow: np.ndarray, wide: np.ndarray, inputs: np.ndarray,
           outputs: np.ndarray) -> np.ndarray:
  """A narrow kernel [..., in, out] (or bias [out]) placed at `inputs` and
  `outputs` of a wide one, whose other inputs into those outputs become zero."""
  result = wide.copy()
  if narrow.ndim == 1:
    result[outputs] = narrow
    return result
  result[..., outputs] = 0.
  result[..., inputs[:, None], outputs[None, :]] = narrow
  return result


def _binary_tables(probabilities: tf.Tensor) -> np.ndarray:
  """Range-coding tables of P(code = 1) (any shape, flattened in order)."""
  probabilities = tf.clip_by_value(tf.reshape(probabilities, [-1]), 2. ** -12, 1. - 2. ** -12)
  tables = []
  for p in probabilities.numpy():
    pmf = tf.constant([1. - p, p, 0.], tf.float32)
    tables += [[-PRECISION], gen_ops.pmf_to_quantized_cdf(pmf, precision=PRECISION).numpy()]
  return np.concatenate(tables).astype(np.int32)
