"""The .tfci container: round trip, and every kind of damaged or foreign file
fails with a one-line CodecError before anything large is allocated."""

import dataclasses
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

import tfc_codecs
from tfc_codecs import api, container, images
from tfc_codecs.errors import CodecError

FINGERPRINT = bytes.fromhex("0123456789abcdef")


@pytest.fixture(scope="session")
def real_files(codecs, photo):
  """Codec name -> a .tfci file of a test photo made by that tiny model."""
  return {name: codec.compress(photo) for name, codec in codecs.items()}


def make_stream(**changes):
  fields = dict(codec="hyperprior", fingerprint=FINGERPRINT, height=96, width=128,
                payloads=(b"side", b"", bytes(range(256)) * 3))
  fields.update(changes)
  return container.Bitstream(**fields)


def header_length(codec_name: str) -> int:
  """Bytes before the header checksum: magic, version, coder, name length,
  name, fingerprint, height, width, count, quality."""
  return 4 + 3 + len(codec_name) + 8 + 4 + 4 + 2 + 1


def with_header(data: bytes, start: int, replacement: bytes, name: str) -> bytes:
  """`data` with header bytes replaced and the header checksum recomputed."""
  end = header_length(name)
  header = data[:start] + replacement + data[start + len(replacement):end]
  assert len(header) == end
  return header + struct.pack(">I", zlib.adler32(header)) + data[end + 4:]


# Round trip -----------------------------------------------------------------
@pytest.mark.parametrize("payloads", [(), (b"",), (b"a", b"bc"), (bytes(70000),)])
def test_serialize_parse_roundtrip(payloads):
  stream = make_stream(payloads=payloads, codec="x" * container.MAX_NAME,
                       height=1, width=container.MAX_SIDE - 1)
  data = container.serialize(stream)
  parsed = container.parse(data, max_pixels=1 << 20)
  assert parsed.codec == stream.codec
  assert parsed.fingerprint == FINGERPRINT
  assert (parsed.height, parsed.width) == (1, container.MAX_SIDE - 1)
  assert parsed.payloads == payloads
  assert parsed.coder == container.CODER_RANGE
  assert parsed.version == container.FORMAT_VERSION
  assert parsed.complete
  assert len(data) == parsed.header_bytes() + sum(len(p) for p in payloads)


def test_layout_is_as_documented():
  stream = make_stream()
  data = container.serialize(stream)
  assert data[:4] == b"TFCI"
  assert data[4] == container.FORMAT_VERSION and data[5] == container.CODER_RANGE
  assert data[6] == len("hyperprior") and data[7:17] == b"hyperprior"
  end = header_length("hyperprior")
  assert struct.unpack(">8sIIHB", data[17:end]) == (FINGERPRINT, 96, 128, 3, 0)
  assert struct.unpack(">I", data[end:end + 4])[0] == zlib.adler32(data[:end])


def test_layout_offsets_match_the_file():
  """`header_offsets` (used by the TF-ops container and the fuzzer) points at
  each field as `serialize` writes it."""
  data = container.serialize(make_stream(quality=7))
  offsets = container.header_offsets(len("hyperprior"))
  for name, value in (("version", container.FORMAT_VERSION), ("coder", container.CODER_RANGE),
                      ("name_length", 10), ("height", 96), ("width", 128), ("count", 3),
                      ("quality", 7), ("header_sum", zlib.adler32(data[:offsets["header_sum"]]))):
    size = next(f.size for f in container.header_fields() if f.name == name)
    assert int.from_bytes(data[offsets[name]:offsets[name] + size], "big") == value, name
  assert data[offsets["codec"]:offsets["fingerprint"]] == b"hyperprior"
  assert data[offsets["fingerprint"]:offsets["height"]] == FINGERPRINT
  assert int.from_bytes(data[offsets["payloads"]:offsets["payloads"] + 4], "big") == 4
  assert container.header_offsets(10, version=1)["header_sum"] == offsets["quality"]


def test_docs_show_the_layout(repo_root):
  doc = (repo_root / "docs" / "bitstream.md").read_text()
  assert container.layout_table() in doc


@pytest.mark.parametrize("quality", [0, 1, 7, 255])
def test_quality_roundtrip(quality):
  data = container.serialize(make_stream(quality=quality))
  assert container.parse(data, 1 << 20).quality == quality
  with pytest.raises(ValueError):
    container.serialize(make_stream(quality=256))


def _version_1_file(coder, payloads):
  header = (b"TFCI" + bytes([1, coder, 10]) + b"hyperprior"
            + struct.pack(">8sIIH", FINGERPRINT, 96, 128, len(payloads)))
  return header + struct.pack(">I", zlib.crc32(header)) + b"".join(
      struct.pack(">I", len(p)) + p + struct.pack(">I", zlib.crc32(p)) for p in payloads)


def test_version_1_files_are_still_read():
  """Version 1 had no quality byte and CRC-32 checksums; its files parse with
  quality 0."""
  payloads = (b"side", b"latents")
  data = _version_1_file(container.CODER_RAW, payloads)
  stream = container.parse(data, 1 << 20)
  assert (stream.version, stream.quality, stream.payloads) == (1, 0, payloads)
  assert stream.header_bytes() + sum(map(len, payloads)) == len(data)


def test_overflow_coded_files_are_refused():
  """Coder 1 (TFC's in-place overflow codes) can hang its decoder: refused."""
  with pytest.raises(CodecError, match="tfc_codecs < 0.2"):
    container.parse(_version_1_file(container.CODER_OVERFLOW, (b"side", b"y")), 1 << 20)


def test_stock_coder_0_2_files_are_refused():
  """Coder 4 (the stock coder's 0.2 payload layout) is not decoded: refused
  by name rather than misread by the current layout."""
  with pytest.raises(CodecError, match="tfc_codecs 0.2's stock-op coder"):
    container.parse(_version_1_file(container.CODER_STOCK_0_2, (b"side", b"y")), 1 << 20)


def test_real_file_parses(codec, real_files, photo):
  stream = codec.parse(real_files[codec.codec_name])
  assert stream.codec == codec.codec_name
  assert stream.fingerprint == codec.fingerprint
  assert (stream.height, stream.width) == photo.shape[:2]
  assert len(stream.payloads) == codec.net.num_payloads
  assert all(stream.payloads)


def test_serialize_rejects_bad_fields():
  with pytest.raises(ValueError):
    container.serialize(make_stream(codec=""))
  with pytest.raises(ValueError):
    container.serialize(make_stream(codec="x" * (container.MAX_NAME + 1)))
  with pytest.raises(ValueError):
    container.serialize(make_stream(fingerprint=b"short"))
  for height, width in ((0, 5), (5, 0), (container.MAX_SIDE, 5)):
    with pytest.raises(CodecError):
      container.serialize(make_stream(height=height, width=width))


def test_serialize_writes_only_what_parse_reads():
  most = (b"",) * container.MAX_PAYLOADS
  data = container.serialize(make_stream(payloads=most))
  assert container.parse(data, 1 << 20).payloads == most
  with pytest.raises(ValueError):
    container.serialize(make_stream(payloads=most + (b"",)))


# Damaged files ----------------------------------------------------------------
def test_every_truncation_fails(codec, real_files):
  data = real_files[codec.codec_name]
  for length in range(len(data)):
    with pytest.raises(CodecError):
      codec.decompress(data[:length])
  with pytest.raises(CodecError, match="trailing"):
    codec.decompress(data + b"\0")


def test_every_bit_flip_fails(codec, real_files):
  data = real_files[codec.codec_name]
  survivors = []
  for position in range(len(data)):
    for bit in range(8):
      damaged = bytearray(data)
      damaged[position] ^= 1 << bit
      try:
        codec.decompress(bytes(damaged))
      except CodecError:
        continue
      survivors.append((position, bit))
  assert survivors == [], f"bit flips decoded without an error: {survivors[:10]}"


def test_bad_magic(codec, real_files):
  data = real_files[codec.codec_name]
  for bad in (b"TFCJ" + data[4:], b"\x89PNG\r\n\x1a\n" + bytes(100), b"", b"TFC"):
    with pytest.raises(CodecError, match="magic"):
      codec.decompress(bad)


def test_unknown_version_and_coder():
  data = container.serialize(make_stream())
  for version in (0, 3, 255):
    with pytest.raises(CodecError, match=f"version {version} "):
      container.parse(with_header(data, 4, bytes([version]), "hyperprior"), 1 << 20)
  with pytest.raises(CodecError, match="coder"):
    container.parse(container.serialize(make_stream(coder=77)), 1 << 20)


def test_corrupt_header_fields():
  data = container.serialize(make_stream())
  for bad_name in (b"\xffyperprior", b"hyper\nprior", b"hyper prior", b"hyper\x00prio"):
    with pytest.raises(CodecError, match="ASCII") as error:
      container.parse(with_header(data, 7, bad_name, "hyperprior"), 1 << 20)
    assert "\n" not in str(error.value)
  with pytest.raises(CodecError, match="payloads"):
    container.parse(with_header(data, 33, struct.pack(">H", 5000), "hyperprior"),
                    1 << 20)
  with pytest.raises(CodecError):
    container.parse(with_header(data, 6, b"\0", "hyperprior"), 1 << 20)


def test_raw_coder_is_refused_by_a_range_coded_codec(codec, real_files):
  stream = codec.parse(real_files[codec.codec_name])
  raw = container.serialize(dataclasses.replace(stream, coder=container.CODER_RAW))
  with pytest.raises(CodecError):
    codec.decompress(raw)


def test_wrong_payload_count(codec, real_files):
  stream = codec.parse(real_files[codec.codec_name])
  for payloads in ((), stream.payloads[:1] * 3, stream.payloads + (b"x",)):
    if len(payloads) == codec.net.num_payloads:
      continue
    data = container.serialize(dataclasses.replace(stream, payloads=payloads))
    with pytest.raises(CodecError, match="payloads"):
      codec.decompress(data)


def test_corrupt_payload_with_valid_checksums(codec, real_files, photo):
  """Damage the checksums cannot see (re-serialized): a CodecError or an
  image of the right shape, never another exception."""
  stream = codec.parse(real_files[codec.codec_name])
  rng = np.random.RandomState(0)
  variants = []
  for index, payload in enumerate(stream.payloads):
    flipped = bytearray(payload)
    flipped[len(flipped) // 2] ^= 0x10
    for damaged in (bytes(flipped), payload[:len(payload) // 2], b"",
                    rng.bytes(len(payload)), payload + rng.bytes(50)):
      payloads = list(stream.payloads)
      payloads[index] = damaged
      variants.append(tuple(payloads))
  for payloads in variants:
    data = container.serialize(dataclasses.replace(stream, payloads=payloads))
    try:
      image = codec.decompress(data)
    except CodecError:
      continue
    assert image.shape == photo.shape and image.dtype == np.uint8


# Sizes ------------------------------------------------------------------------
class NoDecoder:
  """Stands in for a codec's network; fails the test if asked to decode."""

  def __init__(self, net):
    self.codec_name = net.codec_name
    self.num_payloads = net.num_payloads
    self.num_qualities = net.num_qualities
    self.progressive = net.progressive
    self.ops = net.ops

  def decompress(self, *args):
    raise AssertionError("the decoder must not run for a rejected header")


def test_absurd_claimed_size_fails_before_decoding(codec, real_files):
  stream = codec.parse(real_files[codec.codec_name])
  data = container.serialize(dataclasses.replace(stream, height=60000, width=60000))
  guarded = api.ImageCodec(NoDecoder(codec.net), codec.meta, codec.source)
  tracemalloc.start()
  try:
    with pytest.raises(CodecError, match="60000x60000"):
      guarded.decompress(data)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < 1 << 20


def test_absurd_payload_length_allocates_nothing():
  data = container.serialize(make_stream(payloads=(b"abc",)))
  end = header_length("hyperprior") + 4
  damaged = data[:end] + struct.pack(">I", 0xFFFFFFF0) + data[end + 4:]
  tracemalloc.start()
  try:
    with pytest.raises(CodecError, match="truncated"):
      container.parse(damaged, 1 << 20)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < 1 << 20


def test_pixel_limit(codec):
  """`load(max_pixels=)` refuses larger images and files with one line and
  admits those at the limit."""
  image = np.zeros((17, 33, 3), np.uint8)
  data = codec.compress(image)
  limited = tfc_codecs.load(codec.source, max_pixels=17 * 33 - 1)
  for refused in (lambda: limited.compress(image), lambda: limited.decompress(data)):
    with pytest.raises(CodecError, match="limit of 560 pixels") as info:
      refused()
    assert "\n" not in str(info.value)
  admitted = tfc_codecs.load(codec.source, max_pixels=17 * 33)
  assert admitted.compress(image) == data
  np.testing.assert_array_equal(admitted.decompress(data), codec.decompress(data))


def test_default_limit_admits_camera_photo_headers():
  """48 megapixels pass the default limit; 2**28 pixels do not."""
  data = container.serialize(make_stream(height=6000, width=8000))
  assert container.parse(data, images.MAX_PIXELS).num_pixels == 8000 * 6000
  with pytest.raises(CodecError, match=f"limit of {images.MAX_PIXELS} pixels"):
    container.parse(container.serialize(make_stream(height=1 << 14, width=1 << 14)),
                    images.MAX_PIXELS)


# Wrong model ------------------------------------------------------------------
def test_file_from_other_model_names_it(codecs, real_files):
  for maker, reader in (("factorized", "hyperprior"), ("hyperprior", "factorized")):
    with pytest.raises(CodecError) as info:
      codecs[reader].decompress(real_files[maker])
    message = str(info.value)
    assert maker in message and codecs[maker].fingerprint.hex() in message
    assert reader in message and "\n" not in message


def test_same_codec_other_fingerprint(codec, real_files):
  stream = codec.parse(real_files[codec.codec_name])
  data = container.serialize(dataclasses.replace(stream, fingerprint=FINGERPRINT))
  with pytest.raises(CodecError, match=FINGERPRINT.hex()):
    codec.decompress(data)


def test_unshipped_model_needs_model_argument(real_files):
  with pytest.raises(CodecError, match="not shipped"):
    api.load_for(real_files["hyperprior"])


@pytest.mark.slow
def test_files_of_retired_models_still_decode(photo):
  """A model a family shipped before (index.json "retired") is not offered
  any more, but its files still find it and decode without --model."""
  from tfc_codecs import zoo  # pylint: disable=import-outside-toplevel
  retired = zoo.retired_models()
  assert retired, "channelwise run 1 is retired"
  shipped = {entry["path"] for entry in zoo.shipped_models()}
  for entry in retired:
    assert entry["path"] not in shipped
    old = api.load(entry["path"])
    data = old.compress(photo[:64, :64])
    assert zoo.find(old.fingerprint.hex())["path"] == entry["path"]
    np.testing.assert_array_equal(api.load_for(data).decompress(data), old.decompress(data))


def test_cut_progressive_file_finds_its_shipped_model(repo_root, photo, monkeypatch):
  """A progressive file cut at a payload boundary names its model like a
  complete one (the model itself decides whether the cut is acceptable)."""
  from tfc_codecs import zoo  # pylint: disable=import-outside-toplevel
  codec = api.load(str(repo_root / "testdata" / "models" / "rnn_tiny"))
  data = codec.compress(photo, quality=3)
  stream = container.parse(data, 1 << 20)
  cut = len(data) - (len(stream.payloads[-1]) + 8)  # Without the last payload.
  monkeypatch.setattr(zoo, "find", lambda fingerprint: (
      {"path": codec.source} if fingerprint == codec.fingerprint.hex() else None))
  assert api.load_for(data) is codec
  assert api.load_for(data[:cut]) is codec
  assert codec.decompress(data[:cut]).shape == photo.shape
