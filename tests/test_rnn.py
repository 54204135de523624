"""The conv-RNN codec: binarizer, progressive bitstream, coded vs raw bits."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tfc_codecs
from tfc_codecs import container
from tfc_codecs.entropy_coding import cdf_tables
from tfc_codecs.codecs.rnn import RnnCodec, pack_bits, unpack_bits
from tfc_codecs.errors import CodecError
from tfc_codecs.evaluation import metrics
from tfc_codecs.layers.recurrent import Binarizer, ConvGRU, ConvLSTM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_RNN = os.path.join(ROOT, "testdata", "models", "rnn_tiny")
PREVIOUS_RNN = os.path.join(ROOT, "testdata", "models", "rnn_previous_tiny")
COMPAT = os.path.join(ROOT, "testdata", "compat")
PHOTO = os.path.join(ROOT, "testdata", "images", "bsds_crop_0.png")


@pytest.fixture(scope="module")
def codec():
  return tfc_codecs.load(TINY_RNN)


@pytest.fixture(scope="module")
def photo():
  return np.asarray(Image.open(PHOTO).convert("RGB"))


def test_binarizer_straight_through_and_deterministic():
  layer = Binarizer(8)
  x = tf.random.normal([2, 4, 4, 16])
  with tf.GradientTape() as tape:
    tape.watch(x)
    codes = layer(x, training=True)
    loss = tf.reduce_sum(codes * tf.random.normal(codes.shape, seed=1))
  assert set(np.unique(codes.numpy())) <= {-1., 1.}
  grad = tape.gradient(loss, x)
  assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
  first, second = layer(x, training=False), layer(x, training=False)
  assert np.array_equal(first.numpy(), second.numpy())
  expected = np.where(np.tanh(layer.conv(x).numpy()) >= 0, 1., -1.)
  assert np.array_equal(first.numpy(), expected)
  # The bits inference codes are the signs, in training too.
  samples, bits01 = layer.binarize(x, stochastic=True)
  assert np.array_equal(bits01.numpy(), (expected > 0).astype(np.int32))
  assert not np.array_equal(samples.numpy(), expected)
  signs, _ = layer.binarize(x, stochastic=False)
  assert np.array_equal(signs.numpy(), expected)


def test_stochastic_binarizer_is_unbiased():
  tf.random.set_seed(2)
  layer = Binarizer(4)
  x = tf.random.normal([1, 32, 32, 8])
  mean = np.mean([layer(x, training=True).numpy() for _ in range(200)], axis=0)
  # E[b] = tanh(conv(x)); the mean of 200 samples has a std of at most 0.071.
  assert np.mean(np.abs(mean - np.tanh(layer.conv(x).numpy()))) < 0.06


@pytest.mark.parametrize("cell", [ConvLSTM, ConvGRU])
def test_cells_keep_state_shapes(cell):
  layer = cell(8, 3, 2, 1)
  x = tf.random.normal([1, 16, 16, 4])
  zeros = tf.zeros([1, 8, 8, 8])
  out, state = layer(x, (zeros, zeros))
  assert out.shape == (1, 8, 8, 8)
  assert [s.shape for s in state] == [(1, 8, 8, 8)] * 2


@pytest.mark.parametrize("cell", [ConvLSTM, ConvGRU])
def test_cells_none_state_is_the_zero_state_exactly(cell):
  """The first iteration skips the hidden convolutions (state None): its
  output and state are bit-identical to those from zero states, in a
  tf.function as the codec runs them."""
  layer = cell(8, 3, 1, 3)
  x = tf.random.normal([1, 16, 16, 4], seed=3)
  zeros = tf.zeros([1, 16, 16, 8])
  layer(x, (zeros, zeros))  # Builds the weights.
  for variable in layer.weights:  # Nonzero hidden weights: skipping them must not matter.
    variable.assign(tf.random.normal(variable.shape, seed=4))
  step = tf.function(lambda x, state: layer(x, state))
  out, state = step(x, None)
  out_zero, state_zero = step(x, (zeros, zeros))
  assert np.array_equal(out.numpy(), out_zero.numpy())
  assert np.array_equal(state[0].numpy(), state_zero[0].numpy())
  if cell is ConvLSTM:  # The GRU's second state is unused.
    assert np.array_equal(state[1].numpy(), state_zero[1].numpy())
  assert np.any(out.numpy() != layer(x, (out, out))[0].numpy())  # The state matters.


def test_pack_bits_round_trip():
  bits = tf.constant(np.random.default_rng(0).integers(0, 2, (1, 3, 5, 7)), tf.int32)
  string = pack_bits(bits)
  assert len(string.numpy()) == (3 * 5 * 7 + 7) // 8
  assert np.array_equal(unpack_bits(string, tf.shape(bits)).numpy(), bits.numpy())


def test_every_iteration_boundary_decodes_and_quality_rises(codec, photo):
  data = codec.compress(photo, quality=6)
  stream = container.parse(data, 1 << 25)
  assert len(stream.payloads) == 6
  cut, psnrs = len(data) - sum(len(p) + 8 for p in stream.payloads), []
  for k, payload in enumerate(stream.payloads, start=1):
    cut += len(payload) + 8
    decoded = codec.decompress(data[:cut])
    expected, _ = codec.net.reconstruct(tf.constant(photo), k)
    assert np.array_equal(decoded, expected.numpy()), k
    assert np.array_equal(codec.decompress(data, iterations=k), decoded)
    psnrs.append(metrics.psnr(photo, decoded))
  assert psnrs[-1] > psnrs[0] + 1.0, psnrs
  with pytest.raises(CodecError):
    codec.decompress(data[:cut - 3])


def test_coded_and_raw_bits_decode_to_the_same_image(codec, photo):
  coded = codec.compress(photo, quality=4)
  raw = codec.compress(photo, quality=4, raw=True)
  assert container.parse(raw, 1 << 25).coder == container.CODER_RAW
  assert np.array_equal(codec.decompress(coded), codec.decompress(raw))
  # Raw: exactly 32 bits per 16x16 block and iteration (the image is 96x128).
  raw_payload_bytes = sum(len(p) for p in container.parse(raw, 1 << 25).payloads)
  assert raw_payload_bytes == 4 * 32 * (96 // 16) * (128 // 16) // 8
  coded_payload_bytes = sum(len(p) for p in container.parse(coded, 1 << 25).payloads)
  assert coded_payload_bytes < raw_payload_bytes * 1.05


@pytest.fixture(scope="module")
def tiled():
  """The tiny model with 32-pixel tiles: a 96x128 photo is 3x4 tiles."""
  from tfc_codecs import api, model_dir  # pylint: disable=import-outside-toplevel
  net, meta = model_dir.load(TINY_RNN)
  net.tile_size = 32
  return api.ImageCodec(net, meta, TINY_RNN)


def test_tiled_files_decode_progressively(tiled, codec, photo):
  """Every tile's bits of iteration t sit in payload t: a cut file decodes."""
  data = tiled.compress(photo, quality=3)
  stream = container.parse(data, 1 << 25)
  cut = len(data) - sum(len(p) + 8 for p in stream.payloads)
  for k, payload in enumerate(stream.payloads, start=1):
    cut += len(payload) + 8
    expected, _ = tiled.net.reconstruct(tf.constant(photo), k)
    np.testing.assert_array_equal(tiled.decompress(data[:cut]), expected.numpy())
  raw = tiled.compress(photo, quality=3, raw=True)
  np.testing.assert_array_equal(tiled.decompress(raw), tiled.decompress(data))
  # Each tile is coded on its own: each matches the untiled model on that crop.
  decoded = tiled.decompress(data)
  for top, left in ((0, 0), (32, 96), (64, 64)):
    crop = np.ascontiguousarray(photo[top:top + 32, left:left + 32])
    np.testing.assert_array_equal(decoded[top:top + 32, left:left + 32],
                                  codec.decompress(codec.compress(crop, quality=3)))


@pytest.mark.parametrize("which", ["whole", "tiled"])
def test_decompress_steps_match_each_cut_file(which, codec, tiled, photo):
  model = codec if which == "whole" else tiled
  image = np.ascontiguousarray(photo[:70, :101])  # Odd size: padding and crop.
  data = model.compress(image, quality=4)
  steps = model.decompress_steps(data)
  assert steps.shape == (4,) + image.shape and steps.dtype == np.uint8
  for k in range(1, 5):
    np.testing.assert_array_equal(steps[k - 1], model.decompress(data, iterations=k))
  with pytest.raises(CodecError, match="range-coded"):
    model.decompress_steps(model.compress(image, quality=2, raw=True))


@pytest.mark.parametrize("shape", [(33, 70), (64, 1), (100, 40)])
def test_tiled_odd_sizes(tiled, shape):
  image = np.random.default_rng(4).integers(0, 256, shape + (3,), dtype=np.uint8)
  data = tiled.compress(image, quality=2)
  expected, _ = tiled.net.reconstruct(tf.constant(image), 2)
  np.testing.assert_array_equal(tiled.decompress(data), expected.numpy())


@pytest.mark.parametrize("shape", [(1, 1), (17, 33), (40, 7)])
def test_odd_sizes(codec, shape):
  image = np.random.default_rng(3).integers(0, 256, shape + (3,), dtype=np.uint8)
  decoded = codec.decompress(codec.compress(image, quality=2))
  assert decoded.shape == shape + (3,)


def raw_codes(codec, photo, iterations):
  """The codes {0,1} [iterations, positions, bits] of the photo."""
  payloads = container.parse(codec.compress(photo, quality=iterations, raw=True), 1 << 25).payloads
  return np.stack([unpack_bits(tf.constant(p), [8 * len(p)]).numpy().reshape(-1, 32)
                   for p in payloads])


def test_channel_context_payloads_cost_their_information(codec, photo):
  """Each payload is within a few bytes of the codes' information under the
  frozen integer context model (recomputed here from its tables), which is
  within 1% of the training model's float estimate; and below raw bits."""
  net = codec.net
  assert net.context == "channels"
  codes = raw_codes(codec, photo, 4)
  tables = net.entropy_tables()
  rows = cdf_tables.split_rows(tables["cdf"])
  p_one = np.array([(r[3] - r[2]) / 2. ** 16 for r in rows])  # [precision, 0, c0, c1, max]
  weights, bias = tables["context_weights"], tables["context_bias"]
  payloads = container.parse(codec.compress(photo, quality=4), 1 << 25).payloads
  signs = 2 * codes - 1
  previous = np.zeros_like(codes[0])
  for t, payload in enumerate(payloads):
    previous_signs = (2 * previous - 1) * (t > 0)
    logits = bias[t] + np.concatenate([previous_signs, signs[t]], 1) @ weights.T
    level = np.clip((logits + 32 * 16 + 8) // 16, 0, len(rows) - 1)
    p = np.where(codes[t] == 1, p_one[level], 1. - p_one[level])
    information = -np.log2(p).sum()
    assert information - 8 < 8 * len(payload) < information + 8 * 4, t
    assert 8 * len(payload) < 0.97 * codes[t].size, t
    float_bits = float(net._code_bits(t, codes[t], previous))  # pylint: disable=protected-access
    assert abs(float_bits - information) < 0.01 * information, t
    previous = codes[t]


def test_models_and_files_of_the_previous_context_model_decode_as_before(photo):
  """rnn_previous_tiny was trained, and compat/rnn_previous_q3.* written, by
  the code before the "channels" context model (commit 98b02dd)."""
  old = tfc_codecs.load(PREVIOUS_RNN)
  assert old.net.context == "previous"
  with open(os.path.join(COMPAT, "rnn_previous_q3.tfci"), "rb") as f:
    data = f.read()
  expected = np.asarray(Image.open(os.path.join(COMPAT, "rnn_previous_q3.png")))
  assert np.array_equal(old.decompress(data), expected)
  assert old.compress(photo, quality=3) == data


def test_bad_qualities_and_files(codec, photo):
  with pytest.raises(CodecError):
    codec.compress(photo, quality=0)
  with pytest.raises(CodecError):
    codec.compress(photo, quality=codec.net.max_iterations + 1)
  data = bytearray(codec.compress(photo, quality=2))
  data[-6] ^= 0x10
  with pytest.raises(CodecError):
    codec.decompress(bytes(data))
  other = tfc_codecs.load(os.path.join(ROOT, "testdata", "models", "factorized_tiny"))
  with pytest.raises(CodecError):
    other.decompress(codec.compress(photo, quality=1))


@pytest.mark.slow  # CLI subprocesses.
def test_cli_progressive_round_trip(tmp_path):
  cli = [sys.executable, os.path.join(ROOT, "bin", "tfc_codecs")]
  out = tmp_path / "photo.tfci"
  subprocess.run(cli + ["compress", PHOTO, "--model", TINY_RNN, "--quality", "3",
                        "--output", str(out)], check=True, capture_output=True)
  info = subprocess.run(cli + ["info", str(out)], check=True, capture_output=True,
                        text=True).stdout
  assert "payloads:     3 of 3" in info and "boundaries:" in info
  png = tmp_path / "photo.png"
  subprocess.run(cli + ["decompress", str(out), "--model", TINY_RNN, "--iterations", "2",
                        "--output", str(png)], check=True, capture_output=True)
  assert Image.open(png).size == (128, 96)


def test_training_loss_runs_for_every_reconstruction_mode():
  for mode in ("one-shot", "additive", "scaled"):
    model = RnnCodec(width=0.0625, train_iterations=2, reconstruction=mode)
    loss, metrics_ = model.training_loss(tf.random.uniform([1, 32, 32, 3], 0, 255), None)
    assert np.isfinite(float(loss)) and float(metrics_["bpp"]) > 0


@pytest.mark.parametrize("iteration_loss", ["l1", "log-mse"])
def test_training_loss_is_the_chosen_mean_over_iterations(iteration_loss):
  model = RnnCodec(width=0.0625, train_iterations=3, reconstruction="scaled")
  model.iteration_loss = iteration_loss
  x = tf.random.uniform([2, 32, 32, 3], 0, 255, seed=1)
  tf.random.set_seed(7)
  loss, _ = model.training_loss(x, None)
  tf.random.set_seed(7)  # The binarizer draws the same codes again.
  reconstructions, bits = model._iterate(x / 255. - 0.5, 3, training=True)  # pylint: disable=protected-access
  errors = [x.numpy() / 255. - 0.5 - r.numpy() for r in reconstructions]
  if iteration_loss == "l1":
    want = np.mean([np.abs(e).mean() for e in errors])
  else:
    want = np.mean([np.log(np.square(e).mean()) for e in errors])
  want += 1e-3 * float(tf.add_n(bits)) / (2 * 32 * 32)
  assert float(loss) == pytest.approx(want, rel=1e-4)


def test_context_model_learns_from_the_bits_inference_codes():
  """In training the decoder gets stochastic codes, but the context model's
  code length is that of the signs, which inference codes: at iteration 0
  (input = the image) it is the same whatever the binarizer draws, and equals
  the inference-mode code length."""
  model = RnnCodec(width=0.0625, train_iterations=1)
  model.context_bias.assign(tf.random.normal(model.context_bias.shape, seed=3) / 8.)
  x = tf.random.uniform([2, 32, 32, 3], -0.5, 0.5, seed=1)
  lengths = []
  for seed in (1, 2):
    tf.random.set_seed(seed)
    lengths.append(float(model._iterate(x, 1, training=True)[1][0]))  # pylint: disable=protected-access
  inference = float(model._iterate(x, 1, training=False)[1][0])  # pylint: disable=protected-access
  assert lengths[0] == lengths[1] == pytest.approx(inference, rel=1e-6)


def test_sign_binarization_trains_on_the_codes_inference_sends():
  """With `binarization = "sign"` the training forward pass is inference's,
  whatever the random seed, with a straight-through gradient to the encoder;
  the paper's stochastic binarization differs from it."""
  model = RnnCodec(width=0.0625, train_iterations=3)
  x = tf.random.uniform([2, 32, 32, 3], -0.5, 0.5, seed=1)
  inference = model._iterate(x, 3, training=False)[0][-1].numpy()  # pylint: disable=protected-access
  tf.random.set_seed(1)
  stochastic = model._iterate(x, 3, training=True)[0][-1].numpy()  # pylint: disable=protected-access
  assert not np.allclose(stochastic, inference)
  model.binarization = "sign"
  for seed in (1, 2):
    tf.random.set_seed(seed)
    with tf.GradientTape() as tape:
      reconstruction = model._iterate(x, 3, training=True)[0][-1]  # pylint: disable=protected-access
      loss = tf.reduce_mean(tf.abs(x - reconstruction))
    np.testing.assert_array_equal(reconstruction.numpy(), inference)
  gradient = tape.gradient(loss, model.encoder_conv.trainable_variables[0])
  assert gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0
