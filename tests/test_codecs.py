"""The codec contract on the tiny models.

* decoding a file gives exactly the model's own quantized reconstruction;
* the range coder transmits the rounded latents (and side information) exactly;
* the file size matches the model's rate estimate;
* models survive saving and reloading; compress/decompress work inside an
  outer tf.function; any image size round-trips.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfc_codecs import api, model_dir, registry
from tfc_codecs.codecs.base import IMAGE_SPEC, pad_to_multiple


def synthetic_image(rng, height, width):
  """A smooth random image with some texture (photo-like, not pure noise)."""
  coarse = rng.uniform(0, 255, (height // 8 + 2, width // 8 + 2, 3))
  smooth = np.kron(coarse, np.ones((8, 8, 1)))[:height, :width]
  noise = rng.normal(0, 12, (height, width, 3))
  return np.clip(np.round(smooth + noise), 0, 255).astype(np.uint8)


def random_sized_images():
  rng = np.random.RandomState(1234)
  sizes = [tuple(rng.randint(1, 200, 2)) for _ in range(4)] + [(64, 64), (65, 129)]
  return [(f"{h}x{w}", synthetic_image(rng, h, w)) for h, w in sizes]


RANDOM_IMAGES = random_sized_images()


def own_reconstruction(codec, image):
  """The model's quantized forward pass: (uint8 image, estimated bits)."""
  x_hat, bits = codec.net.reconstruct(tf.constant(image))
  return x_hat.numpy(), float(bits)


def assert_roundtrip(codec, image):
  data = codec.compress(image)
  decoded = codec.decompress(data)
  assert decoded.dtype == np.uint8
  assert decoded.shape == image.shape
  expected, _ = own_reconstruction(codec, image)
  mismatch = np.count_nonzero(decoded != expected)
  assert mismatch == 0, (f"{codec.codec_name}: {mismatch} samples of the decoded "
                         "image differ from the model's own reconstruction")
  return data, decoded


# (a) Decoding reproduces the model's own reconstruction, bit for bit. -------
def test_roundtrip_matches_reconstruction_on_photos(codec, photos):
  for name, image in photos.items():
    _, decoded = assert_roundtrip(codec, image)
    assert np.any(decoded != image), name  # Lossy: a real decode, not a copy.


@pytest.mark.parametrize("name,image", RANDOM_IMAGES, ids=[n for n, _ in RANDOM_IMAGES])
def test_roundtrip_matches_reconstruction_on_random_sizes(codec, name, image):
  assert_roundtrip(codec, image)


def test_graph_mode_matches_eager_mode(codec, photo):
  """compress/decompress/reconstruct are tf.functions; the transforms must
  compute the same in graph mode as eagerly (e.g. GDN's |x| branch)."""
  net = codec.net
  x = pad_to_multiple(tf.cast(photo, tf.float32)[None], net.downsampling)
  eager_x_hat, eager_bits = net(x, training=False)
  graph_x_hat, graph_bits = tf.function(lambda t: net(t, training=False))(x)
  np.testing.assert_allclose(graph_x_hat.numpy(), eager_x_hat.numpy(), atol=0.01)
  np.testing.assert_allclose(graph_bits.numpy(), eager_bits.numpy(), rtol=1e-4)


def test_compress_is_deterministic(codec, photo):
  assert codec.compress(photo) == codec.compress(photo.copy())


# (b) The range coder transmits the quantized latents exactly. --------------
def coded_and_model_latents(codec, image):
  """{name: (decoded from the payloads, rounded by the model)} per latent."""
  net = codec.net
  payloads = net.compress(tf.constant(image))
  x = pad_to_multiple(tf.cast(image, tf.float32)[None], net.downsampling)
  padded = np.array(x.shape[1:3])
  y = net.analysis(x)
  if net.codec_name == "factorized":
    assert payloads.shape == (1,)
    y_dec = net.coder.decompress(payloads[:1], padded // net.downsampling)
    return {"y": (y_dec.numpy(), tf.round(y).numpy())}
  z = net.hyper_analysis(y)
  z_dec = net.side_coder.decompress(payloads[:1], padded // net.downsampling)
  if net.codec_name == "channelwise":  # Latents minus their means are coded.
    assert payloads.shape == (1 + len(net.slices),)
    y_dec = net.slice_chain(z_dec, payloads=payloads).decoded
    y_model = net.slice_chain(tf.round(z), y=y).decoded
    return {"z": (z_dec.numpy(), tf.round(z).numpy()), "y": (y_dec.numpy(), y_model.numpy())}
  assert net.codec_name == "hyperprior" and payloads.shape == (2,)
  indexes = net.scale_indexes(z_dec)
  y_dec = net.coder.decompress(payloads[1:2], indexes)
  return {"z": (z_dec.numpy(), tf.round(z).numpy()),
          "y": (y_dec.numpy(), tf.round(y).numpy())}


@pytest.mark.parametrize("which", ["photo", "random"])
def test_latents_roundtrip_exactly(codec, photo, which):
  image = photo if which == "photo" else RANDOM_IMAGES[0][1]
  latents = coded_and_model_latents(codec, image)
  for name, (decoded, rounded) in latents.items():
    assert decoded.shape == rounded.shape, name
    assert np.count_nonzero(rounded) > 0, f"{name} is all zeros: test is vacuous"
    mismatch = np.count_nonzero(decoded != rounded)
    assert mismatch == 0, f"{mismatch} of {rounded.size} elements of {name} differ"


def test_latent_shapes(codec):
  # The latents have 1/16 of the size of the image padded to the multiple.
  image = synthetic_image(np.random.RandomState(5), 17, 33)
  decoded, _ = coded_and_model_latents(codec, image)["y"]
  multiple = codec.net.downsampling
  padded = [-(-side // multiple) * multiple for side in (17, 33)]
  assert decoded.shape == (1, padded[0] // 16, padded[1] // 16,
                           codec.net.config["latent_filters"])


# (c) The file size matches the rate estimate. ------------------------------
# The range coder may end a string up to about one byte before the point the
# information content would suggest (the decoder reads zeros past the end),
# so each payload string may fall short of the estimate by at most 8 bits.
TERMINATION_BITS = 8
OVERHEAD_BITS = 32  # Upper bound slack per string (termination, table precision).
REL_TOLERANCE = 0.03


def test_payload_bits_match_estimate(codec, photos):
  for name, image in photos.items():
    stream = codec.parse(codec.compress(image))
    bits = 8 * sum(len(p) for p in stream.payloads)
    _, estimate = own_reconstruction(codec, image)
    count = len(stream.payloads)
    assert bits >= estimate * (1 - 1e-5) - TERMINATION_BITS * count, (
        f"{name}: {bits} payload bits are fewer than the estimated information "
        f"content {estimate:.1f} (payloads {[8 * len(p) for p in stream.payloads]})")
    assert bits <= estimate * (1 + REL_TOLERANCE) + OVERHEAD_BITS * count, (
        f"{name}: {bits} payload bits, estimate {estimate:.1f}")


def test_side_information_bits_match_estimate(codecs, photos):
  """The hyperprior's side string alone against the side-information estimate."""
  net = codecs["hyperprior"].net
  for name, image in photos.items():
    payloads = net.compress(tf.constant(image)).numpy()
    x = pad_to_multiple(tf.cast(image, tf.float32)[None], net.downsampling)
    _, side_bits = net.side_bottleneck(net.hyper_analysis(net.analysis(x)),
                                       training=False)
    side_bits = float(side_bits[0])
    assert side_bits - TERMINATION_BITS <= 8 * len(payloads[0]), name
    assert 8 * len(payloads[0]) <= side_bits * (1 + REL_TOLERANCE) + OVERHEAD_BITS, name


# (d) Saving and reloading a model keeps its bitstreams decodable. -----------
@pytest.mark.slow  # Builds, traces and saves a model: > 10 s.
@pytest.mark.parametrize("codec_name", ["factorized", "hyperprior", "channelwise"])
def test_fresh_model_survives_save_and_load(codec_name, tmp_path, photo):
  net = registry.codec_class(codec_name)(num_filters=8, latent_filters=8)
  model_dir.round_weights(net)
  net.freeze()
  path = tmp_path / "model"
  fingerprint = model_dir.save(net, str(path), provenance={"test": True})
  meta = model_dir.read_meta(str(path))
  assert meta["fingerprint"] == fingerprint
  assert meta["codec"] == codec_name
  assert {k: meta["config"][k] for k in ("num_filters", "latent_filters")} == {
      "num_filters": 8, "latent_filters": 8}
  assert meta["config"] == json.loads(json.dumps(net.config))
  original = api.ImageCodec(net, meta, str(path))
  data = original.compress(photo)
  expected = original.decompress(data)
  np.testing.assert_array_equal(expected, net.reconstruct(tf.constant(photo))[0].numpy())

  reloaded = api.load(str(path))
  assert reloaded.net is not net
  assert reloaded.fingerprint.hex() == fingerprint
  np.testing.assert_array_equal(reloaded.decompress(data), expected)
  assert reloaded.compress(photo) == data
  # No staging directory is left next to the model.
  assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_tiny_model_resaves_identically(codec, tmp_path, photo):
  path = tmp_path / "copy"
  fingerprint = model_dir.save(codec.net, str(path),
                               provenance=codec.meta["provenance"])
  assert fingerprint == codec.meta["fingerprint"]
  net, meta = model_dir.load(str(path))
  assert net is not codec.net and meta["fingerprint"] == fingerprint
  copy = api.ImageCodec(net, meta, str(path))
  data = codec.compress(photo)
  np.testing.assert_array_equal(copy.decompress(data), codec.decompress(data))
  assert copy.compress(photo) == data


def test_save_refuses_existing_directory(codec, tmp_path):
  from tfc_codecs.errors import CodecError  # pylint: disable=import-outside-toplevel
  path = tmp_path / "model"
  path.mkdir()
  (path / "keep").write_text("x")
  with pytest.raises(CodecError):
    model_dir.save(codec.net, str(path), provenance={})
  assert (path / "keep").read_text() == "x"


# (e) compress/decompress inside an outer tf.function. ----------------------
def test_inside_outer_tf_function(codec, photo):
  net = codec.net

  @tf.function(input_signature=[IMAGE_SPEC])
  def roundtrip(image):
    payloads = net.compress(image)
    return payloads, net.decompress(payloads, tf.shape(image)[:2])

  @tf.function
  def encode(image):
    return net.compress(image)

  @tf.function
  def decode(payloads, shape):
    return net.decompress(payloads, shape)

  direct = net.compress(tf.constant(photo)).numpy()
  expected, _ = own_reconstruction(codec, photo)
  other = RANDOM_IMAGES[1][1]
  _, decoded = roundtrip(tf.constant(other))
  np.testing.assert_array_equal(decoded.numpy(), own_reconstruction(codec, other)[0])
  payloads, decoded = roundtrip(tf.constant(photo))
  assert list(payloads.numpy()) == list(direct)
  np.testing.assert_array_equal(decoded.numpy(), expected)
  payloads = encode(tf.constant(photo))
  assert list(payloads.numpy()) == list(direct)
  decoded = decode(payloads, tf.constant(photo.shape[:2], tf.int32))
  np.testing.assert_array_equal(decoded.numpy(), expected)


# (f) Odd sizes. -------------------------------------------------------------
@pytest.mark.parametrize("height,width", [(1, 1), (17, 33), (513, 767)])
def test_odd_sizes(codec, height, width):
  image = synthetic_image(np.random.RandomState(height), height, width)
  data, decoded = assert_roundtrip(codec, image)
  assert decoded.shape == (height, width, 3)
  stream = codec.parse(data)
  assert (stream.height, stream.width) == (height, width)


# (g) The decoder's scale indexes are exact. ----------------------------------
def test_exact_hyper_synthesis_follows_the_float_transform(codecs, photos):
  """The fixed-point hyper-synthesis computes what the float32 layers compute
  (same padding and upsampling), to within its rounding."""
  from tfc_codecs.layers.fixed_point import exact_hyper_synthesis  # pylint: disable=import-outside-toplevel
  net = codecs["hyperprior"].net
  for name, image in photos.items():
    x = pad_to_multiple(tf.cast(image, tf.float32)[None], net.downsampling)
    z_hat = tf.round(net.hyper_analysis(net.analysis(x)))
    continuous = net.hyper_synthesis(z_hat).numpy()
    exact = exact_hyper_synthesis(net.hyper_synthesis, z_hat).numpy()
    assert exact.shape == continuous.shape and np.all(exact == np.round(exact)), name
    assert np.abs(exact - continuous).max() <= 0.52, name  # Fixed-point error < 0.02.
    assert np.mean(exact == np.round(continuous)) > 0.99, name


@pytest.mark.slow  # Traces and caches each model's functions: > 10 s.
@pytest.mark.parametrize("name", ["factorized_tiny", "hyperprior_tiny", "hyperprior_vr_tiny",
                                  "channelwise_vr_tiny"])
def test_cached_functions_write_the_same_bytes(name, repo_root, photos, tmp_path, monkeypatch):
  """A model loaded from the traced-function cache (no Keras model built)
  writes and decodes exactly what the model itself does; exposing `.net`
  switches back to the model's own functions."""
  from tfc_codecs import traced_cache  # pylint: disable=import-outside-toplevel
  path = str(repo_root / "testdata" / "models" / name)
  monkeypatch.setenv("TFC_CODECS_CACHE", str(tmp_path))
  net, meta = model_dir.load(path)
  live = api.ImageCodec(net, meta, path)  # No cache entry: the model's functions.
  images = list(photos.values())[:2] + [images_of_size(37, 75)]
  expected = [live.compress(image) for image in images]
  decoded = [live.decompress(data) for data in expected]

  monkeypatch.setattr(api, "_cache", {})
  first = api.load(path)  # Cache miss: traces, then saves each function used.
  assert first.compress(images[0]) == expected[0]
  np.testing.assert_array_equal(first.decompress(expected[0]), decoded[0])
  entry = traced_cache.entry_dir(meta["fingerprint"], "tfc")
  assert sorted(p.name for p in (tmp_path / entry.split("/")[-1]).iterdir()) == [
      "codec.json", "compress", "decompress"]

  monkeypatch.setattr(api, "_cache", {})
  cached = api.load(path)
  assert [cached.compress(image) for image in images] == expected
  for data, image in zip(expected, decoded):
    np.testing.assert_array_equal(cached.decompress(data), image)
  assert cached._net is None  # pylint: disable=protected-access
  assert (cached.codec_name, cached.num_qualities, cached.progressive) == (
      live.codec_name, live.num_qualities, live.progressive)
  assert cached.net.config == net.config and cached.compress(images[0]) == expected[0]


def images_of_size(height, width):
  return synthetic_image(np.random.RandomState(7), height, width)


def test_damaged_cache_entry_is_replaced(repo_root, photo, tmp_path, monkeypatch):
  """A cached function that does not load is traced again and rewritten."""
  path = str(repo_root / "testdata" / "models" / "hyperprior_tiny")
  monkeypatch.setenv("TFC_CODECS_CACHE", str(tmp_path))
  monkeypatch.setattr(api, "_cache", {})
  expected = api.load(path).compress(photo)
  (library,) = tmp_path.glob("*/compress/functions.pb")
  library.write_bytes(b"not a FunctionDefLibrary")
  monkeypatch.setattr(api, "_cache", {})
  assert api.load(path).compress(photo) == expected
  monkeypatch.setattr(api, "_cache", {})
  again = api.load(path)
  assert again.compress(photo) == expected
  assert again._net is None  # pylint: disable=protected-access
