"""Analysis and synthesis transforms run tile by tile, with exact halos.

The Ballé transforms are four 5x5 (up/down-sampling by 2) convolutions with
zero padding ("same_zeros") and per-pixel nonlinearities (GDN/IGDN): each
output sample depends on a bounded window of the input, its receptive field.
On a large image the full-resolution activations dominate memory (128
channels at half resolution: 6 GiB for 8000x6000 pixels), so `tiled` runs a
transform over overlapping tiles: each tile's input is the tile plus a halo
that covers the receptive field of the tile's outputs, and only the tile's own
outputs are kept and stitched. Where a tile touches the image border there is
no halo on that side, so the transform sees the same zero padding as on the
whole image; elsewhere the halo holds real neighbours. Every kept output is
therefore computed from exactly the inputs (and intermediate zero padding) of
the whole-image computation: the stitched result equals it up to float
summation order, whatever the tile size, and an image of one tile runs
exactly the whole-image computation.

The tile size is an implementation choice, not part of the file format: only
the transforms are tiled; the entropy coding of the (16x smaller) latents
stays whole-image.

Within a tile, each up-convolution of the synthesis runs over bands of input
rows (`banded`), so that its kernel's buffers stay below BAND_BUFFER_BYTES:
the polyphase correlations (`upsampling.up_convolve`) hold 3·u²·filters floats
per input sample (phases, their concatenation, its interleaving); TensorFlow's
transposed convolution with explicit padding, kept for the RGB output layer,
k²·filters floats (396 MB for a 128-channel layer of a Kodak image). Each
output is the same sum of the same products whatever the band, so bands give
the unbanded values up to float summation order: bit for bit on the AVX-512
CPUs of earlier sessions, within 1.4e-6 on an AVX2 one (tested to 1e-5).
"""

from typing import Callable, Tuple

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_codecs.layers import upsampling

PER_PIXEL_LAYERS = (tf.keras.layers.Lambda, tfc.GDN)
BAND_BUFFER_BYTES = 96 << 20


def _layer_window(layer, lo: int, hi: int) -> Tuple[int, int]:
  """Input indexes [lo', hi'] (inclusive, 1-D) that outputs [lo, hi] of
  `layer` read, zero padding counted as reading outside the signal."""
  if isinstance(layer, PER_PIXEL_LAYERS):
    return lo, hi
  if not isinstance(layer, tfc.SignalConv2D) or layer.padding != "same_zeros":
    raise ValueError(f"tiling: no receptive field rule for layer {layer.name}")
  if isinstance(layer.activation, tf.keras.layers.Layer) and not isinstance(
      layer.activation, PER_PIXEL_LAYERS):
    raise ValueError(f"tiling: activation of {layer.name} is not per-pixel")
  support = layer.kernel_support[0]
  down, up = layer.strides_down[0], layer.strides_up[0]
  if layer.kernel_support[1] != support or layer.strides_down[1] != down or (
      layer.strides_up[1] != up):
    raise ValueError(f"tiling: {layer.name} is not square")
  # The upsampled input (input i at u*i, zeros between) is padded by `before`
  # and correlated with the (flipped, if not corr) kernel at every `down`-th
  # position: output j reads upsampled positions j*d - before .. + support-1.
  before = support // 2 if layer.corr else (support - 1) // 2
  first, last = lo * down - before, hi * down - before + support - 1
  return -(-first // up), last // up


def receptive_window(transform: tf.keras.Sequential, lo: int, hi: int) -> Tuple[int, int]:
  """Input indexes [lo', hi'] (inclusive) that outputs [lo, hi] of a
  Sequential of "same_zeros" SignalConv2D and per-pixel layers depend on."""
  return _window(transform.layers, lo, hi)


def _window(layers, lo: int, hi: int) -> Tuple[int, int]:
  for layer in reversed(layers):
    lo, hi = _layer_window(layer, lo, hi)
  return lo, hi


def halos(transform: tf.keras.Sequential, in_unit: int, out_unit: int) -> Tuple[int, int]:
  """Halo (before, after), in units, that a tile of `transform` needs; one
  unit is `in_unit` input samples and `out_unit` output samples."""
  return _halos(transform.layers, in_unit, out_unit)


def _halos(layers, in_unit: int, out_unit: int) -> Tuple[int, int]:
  lo, hi = _window(layers, 0, out_unit - 1)
  return max(0, -(lo // in_unit)), max(0, -(-(hi - (in_unit - 1)) // in_unit))


def tiled(fn: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor, tile: int,
          halo: Tuple[int, int], in_unit: int, out_unit: int,
          dtype: tf.DType, channels: int) -> tf.Tensor:
  """`fn` ([1, h, w, C], h and w multiples of `in_unit` -> [1, h/in_unit*out_unit,
  w/in_unit*out_unit, channels] of `dtype`) applied to x [1, H, W, C] one tile of
  `tile` x `tile` units at a time, each with `halo` = (before, after) units of
  context, and stitched. Tiles run one after another (bounded memory)."""
  if tile < 1:
    raise ValueError(f"tiling: tiles must be at least one unit, not {tile}")
  shape = tf.shape(x)
  rows, cols = shape[1] // in_unit, shape[2] // in_unit
  tile_rows, tile_cols = -(-rows // tile), -(-cols // tile)

  def window(index, size):
    start = index * tile
    end = tf.minimum(start + tile, size)
    return start, end, tf.maximum(start - halo[0], 0), tf.minimum(end + halo[1], size)

  def band(i, bands):
    top, bottom, crop_top, crop_bottom = window(i, rows)

    def column(j, tiles):
      left, right, crop_left, crop_right = window(j, cols)
      out = fn(x[:, crop_top * in_unit:crop_bottom * in_unit,
                 crop_left * in_unit:crop_right * in_unit])
      out = out[0, (top - crop_top) * out_unit:(bottom - crop_top) * out_unit,
                (left - crop_left) * out_unit:(right - crop_left) * out_unit]
      return j + 1, tiles.write(j, tf.transpose(out, [1, 0, 2]))  # Width first.

    tiles = tf.TensorArray(dtype, size=tile_cols, infer_shape=False,
                           element_shape=[None, None, channels])
    _, tiles = tf.while_loop(lambda j, _: j < tile_cols, column, (0, tiles),
                             parallel_iterations=1)
    return i + 1, bands.write(i, tf.transpose(tiles.concat(), [1, 0, 2]))

  bands = tf.TensorArray(dtype, size=tile_rows, infer_shape=False,
                         element_shape=[None, None, channels])
  _, bands = tf.while_loop(lambda i, _: i < tile_rows, band, (0, bands),
                           parallel_iterations=1)
  return bands.concat()[None]


def banded(layer: tfc.SignalConv2D, x: tf.Tensor) -> tf.Tensor:
  """`upsampling.up_convolve(layer, x)` for x [1, h, w, C] and an up-sampling
  "same_zeros" layer, computed over bands of input rows, each with the halo of
  rows its outputs read, so that the kernel's buffers stay below
  BAND_BUFFER_BYTES."""
  up = layer.strides_up[0]
  before, after = _halos([layer], 1, up)
  rows, width = tf.shape(x)[1], tf.shape(x)[2]
  row_bytes = tf.cast(width, tf.int64) * upsampling.buffer_bytes(layer)
  band = tf.cast(tf.maximum(BAND_BUFFER_BYTES // row_bytes, 1), tf.int32)

  def step(i, bands):
    top = i * band
    bottom = tf.minimum(top + band, rows)
    first, last = tf.maximum(top - before, 0), tf.minimum(bottom + after, rows)
    out = upsampling.up_convolve(layer, x[:, first:last])
    return i + 1, bands.write(i, out[0, (top - first) * up:(bottom - first) * up])

  def in_bands():
    bands = tf.TensorArray(tf.float32, size=-(-rows // band), infer_shape=False,
                           element_shape=[None, None, layer.filters])
    _, bands = tf.while_loop(lambda i, _: i < bands.size(), step, (0, bands),
                             parallel_iterations=1)
    return bands.concat()[None]

  return tf.cond(band >= rows, lambda: upsampling.up_convolve(layer, x), in_bands)


def _upsamples(layer: tf.keras.layers.Layer) -> bool:
  return isinstance(layer, tfc.SignalConv2D) and max(layer.strides_up) > 1


def output_channels(transform: tf.keras.Sequential) -> int:
  """Output channels of a transform: those of its last convolution."""
  return [l for l in transform.layers if isinstance(l, tfc.SignalConv2D)][-1].filters


def tiled_analysis(transform: tf.keras.Sequential, x: tf.Tensor,
                   tile_size: int) -> tf.Tensor:
  """Latents of x [1, H, W, 3] (uint8 or float, H and W multiples of 16),
  computed over tiles of `tile_size` pixels (a multiple of 16)."""
  return tiled(lambda t: transform(tf.cast(t, tf.float32)), x, tile_size // 16,
               halos(transform, 16, 1), 16, 1, tf.float32,
               output_channels(transform))


def tiled_synthesis(transform: tf.keras.Sequential, y_hat: tf.Tensor,
                    tile_size: int,
                    output: Callable[[tf.Tensor], tf.Tensor] = tf.identity,
                    dtype: tf.DType = tf.float32) -> tf.Tensor:
  """Image from latents [1, h, w, M] over tiles of `tile_size` pixels;
  `output` (per pixel, e.g. rounding to uint8 of `dtype`) is applied to each
  tile before stitching. Up-convolutions run in bands (`banded`)."""

  def synthesize(t):
    for layer in transform.layers:
      t = banded(layer, t) if _upsamples(layer) else layer(t)
    return output(t)

  return tiled(synthesize, y_hat, tile_size // 16, halos(transform, 1, 16), 1, 16, dtype,
               output_channels(transform))
