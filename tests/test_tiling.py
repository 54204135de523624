"""Huge images: the Ballé transforms run over tiles with exact halos.

* the halos come from the transforms' receptive fields, which match what the
  layers really read (perturbing one input sample);
* tiled analysis and synthesis equal the whole-image transforms for several
  tile sizes, and too small a halo would not;
* files and decoded images are identical whatever the tile size, and an image
  of one tile is coded exactly as before tiling existed;
* the synthesis' up-convolutions as polyphase correlations (`upsampling`)
  compute the layers' outputs, and bands of rows change nothing.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_codecs import api, model_dir
from tfc_codecs.codecs.base import pad_to_multiple, to_uint8
from tfc_codecs.layers import tiling, upsampling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {name: os.path.join(ROOT, "testdata", "models", f"{name.replace('-', '_')}_tiny")
        for name in ("factorized", "hyperprior", "hyperprior-vr", "channelwise",
                     "channelwise-vr")}
TILE_SIZES = (16, 32, 48, 64)


def tiny_codec(name, tile_size=None):
  """A fresh copy of a tiny model (its tf.functions trace this tile size)."""
  net, meta = model_dir.load(TINY[name])
  if tile_size:
    net.tile_size = tile_size
  return api.ImageCodec(net, meta, TINY[name])


@pytest.fixture(scope="module")
def nets():
  return {name: tiny_codec(name).net for name in TINY}


def test_halos_of_the_transforms(nets):
  net = nets["hyperprior"]
  # Latent i reads pixels 16i-30 .. 16i+30 (four 5x5 stride-2 layers);
  # pixel p reads latents (p-30)/16 .. (p+30)/16.
  assert tiling.receptive_window(net.analysis, 0, 0) == (-30, 30)
  assert tiling.halos(net.analysis, 16, 1) == (2, 1)
  assert tiling.receptive_window(net.synthesis, 0, 15) == (-1, 2)
  assert tiling.halos(net.synthesis, 1, 16) == (1, 2)


def test_receptive_fields_match_the_layers(nets):
  """Perturbing one sample changes exactly the outputs whose window holds it."""
  net = nets["hyperprior"]
  rng = np.random.RandomState(0)
  x = rng.uniform(0, 255, (1, 192, 64, 3)).astype(np.float32)
  y = net.analysis(x).numpy()
  for row in (96, 97, 111, 112, 126, 127):
    moved = x.copy()
    moved[0, row, 30] += 100.
    changed = np.nonzero(np.abs(net.analysis(moved).numpy() - y).max(axis=(0, 2, 3)))[0]
    expected = [i for i in range(y.shape[1]) if 16 * i - 30 <= row <= 16 * i + 30]
    assert list(changed) == expected, row
  latents = rng.normal(0, 3, (1, 12, 4, 24)).astype(np.float32)
  image = net.synthesis(latents).numpy()
  moved = latents.copy()
  moved[0, 6, 2] += 5.
  changed = np.nonzero(np.abs(net.synthesis(moved).numpy() - image).max(axis=(0, 2, 3)))[0]
  assert list(changed) == list(range(16 * 6 - 30, 16 * 6 + 31))


@pytest.mark.slow  # > 10 s.
@pytest.mark.parametrize("name", ["factorized", "hyperprior"])
def test_tiled_transforms_equal_the_whole_image(nets, photos, name):
  net = nets[name]
  for image in photos.values():  # 96x128: up to 6x8 tiles of 16 pixels.
    x = pad_to_multiple(tf.constant(image)[None], net.downsampling)
    y = net.analysis(tf.cast(x, tf.float32))
    y_hat = tf.round(y)
    x_hat = to_uint8(net.synthesis(y_hat))
    for tile_size in TILE_SIZES:
      y_tiled = tiling.tiled_analysis(net.analysis, x, tile_size)
      assert y_tiled.shape == y.shape
      assert np.abs((y_tiled - y).numpy()).max() <= 1e-3, tile_size
      x_tiled = tiling.tiled_synthesis(net.synthesis, y_hat, tile_size, to_uint8, tf.uint8)
      assert x_tiled.shape == x_hat.shape and x_tiled.dtype == tf.uint8
      differ = np.count_nonzero(x_tiled.numpy() != x_hat.numpy())
      assert differ <= 1e-4 * x_hat.numpy().size, (tile_size, differ)  # Float ties only.


def test_smaller_halos_would_show_seams(nets, photo):
  """The test above is not vacuous: tiles without the halo differ."""
  net = nets["factorized"]
  x = pad_to_multiple(tf.constant(photo)[None], 16)
  y = net.analysis(tf.cast(x, tf.float32))
  no_halo = tiling.tiled(lambda t: net.analysis(tf.cast(t, tf.float32)), x, 2, (0, 0),
                         16, 1, tf.float32, 24)
  one_short = tiling.tiled(lambda t: net.analysis(tf.cast(t, tf.float32)), x, 2, (1, 1),
                           16, 1, tf.float32, 24)
  assert np.abs((no_halo - y).numpy()).max() > 0.1
  assert np.abs((one_short - y).numpy()).max() > 0.01
  y_hat = tf.round(y)
  whole = net.synthesis(y_hat)
  short = tiling.tiled(net.synthesis, y_hat, 2, (1, 1), 1, 16, tf.float32, 3)
  assert np.abs((short - whole).numpy()).max() > 0.1


@pytest.mark.parametrize("support,up", [(5, 2), (3, 2), (4, 2), (5, 3)])
def test_polyphase_up_convolutions_equal_the_layers(support, up):
  """Phase correlations give an up-sampling layer's outputs (bias and IGDN
  included) up to float summation order, for any input size; a layer with
  few output channels keeps its own kernel."""
  layer = tfc.SignalConv2D(16, (support, support), corr=False, strides_up=up,
                           padding="same_zeros", kernel_parameter="variable",
                           kernel_initializer="random_normal", bias_initializer="random_normal",
                           activation=tfc.GDN(inverse=True))
  rng = np.random.RandomState(support + up)
  assert upsampling.uses_phases(layer)
  for height, width in ((1, 1), (7, 5), (4, 9)):
    x = tf.constant(rng.normal(0, 1, (2, height, width, 8)), tf.float32)
    expected = layer(x).numpy()
    actual = upsampling.up_convolve(layer, x).numpy()
    assert actual.shape == expected.shape == (2, up * height, up * width, 16)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
  rgb = tfc.SignalConv2D(3, (5, 5), corr=False, strides_up=2, padding="same_zeros")
  assert not upsampling.uses_phases(rgb)


@pytest.mark.slow  # > 10 s.
def test_banded_up_convolutions_equal_the_unbanded_layers(nets, monkeypatch):
  """Bands of input rows (down to one row, and a short last band) give every
  up-convolution's outputs up to float summation order (bit for bit where the
  kernel sums in the same order whatever the band, as on AVX-512 CPUs; 1.4e-6
  apart on an AVX2 one); bands without the halo would not."""
  net = nets["hyperprior"]
  x = tf.constant(np.random.RandomState(1).normal(0, 3, (1, 13, 9, 24)), tf.float32)
  for layer in net.synthesis.layers:
    if not tiling._upsamples(layer):  # pylint: disable=protected-access
      continue
    whole = upsampling.up_convolve(layer, x).numpy()
    row_bytes = 9 * upsampling.buffer_bytes(layer)
    for rows in (1, 2, 5, 13):
      monkeypatch.setattr(tiling, "BAND_BUFFER_BYTES", rows * row_bytes)
      np.testing.assert_allclose(tiling.banded(layer, x).numpy(), whole, rtol=0, atol=1e-5)
    monkeypatch.setattr(tiling, "_halos", lambda *_: (0, 0))
    monkeypatch.setattr(tiling, "BAND_BUFFER_BYTES", 4 * row_bytes)
    assert np.abs(tiling.banded(layer, x).numpy() - whole).max() > 1e-3
    monkeypatch.undo()
    x = tf.constant(whole)


@pytest.mark.slow  # > 10 s.
@pytest.mark.parametrize("name", sorted(TINY))
def test_files_do_not_depend_on_the_tile_size(photos, name):
  rng = np.random.RandomState(3)
  inputs = list(photos.values())[:2] + [rng.randint(0, 256, (150, 200, 3)).astype(np.uint8)]
  reference = tiny_codec(name)  # One tile: the whole-image computation.
  assert reference.net.tile_size >= 1024
  files = [reference.compress(image) for image in inputs]
  decoded = [reference.decompress(data) for data in files]
  for tile_size in (16, 32, 64):
    codec = tiny_codec(name, tile_size)
    for image, data, expected in zip(inputs, files, decoded):
      assert codec.compress(image) == data, (name, tile_size, image.shape)
      np.testing.assert_array_equal(codec.decompress(data), expected)
    if name == "hyperprior-vr":
      assert codec.compress(inputs[0], 1) == reference.compress(inputs[0], 1)


def test_tile_size_must_be_positive(nets, photo):
  x = pad_to_multiple(tf.constant(photo)[None], 16)
  with pytest.raises(ValueError):
    tiling.tiled_analysis(nets["factorized"].analysis, x, 8)
