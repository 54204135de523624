"""Reading images of any mode into uint8 RGB, with notes; bad inputs fail
quickly with a CodecError."""

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from tfc_codecs import images
from tfc_codecs.errors import CodecError

RNG = np.random.RandomState(7)
GRAY = RNG.randint(0, 256, (5, 7), dtype=np.uint8)
PALETTE_COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)

GRAY_NOTE = "grayscale expanded to RGB"
ALPHA_NOTE = "alpha channel dropped"
PALETTE_NOTE = "palette expanded to RGB"


def save(tmp_path, image, name, **kwargs):
  path = tmp_path / name
  image.save(path, **kwargs)
  return str(path)


def palette_image():
  image = Image.fromarray(GRAY % 4, "P")
  image.putpalette(PALETTE_COLORS.ravel().tolist() + [0] * (3 * 252))
  return image


def test_rgb_png_is_exact(tmp_path):
  rgb = RNG.randint(0, 256, (9, 11, 3), dtype=np.uint8)
  array, notes = images.read_image(save(tmp_path, Image.fromarray(rgb), "rgb.png"))
  assert notes == [] and array.dtype == np.uint8
  np.testing.assert_array_equal(array, rgb)
  decoded, notes = images.decode_image(images.encode_png(rgb))
  assert notes == []
  np.testing.assert_array_equal(decoded, rgb)


def test_gray_is_replicated(tmp_path):
  array, notes = images.read_image(save(tmp_path, Image.fromarray(GRAY, "L"), "l.png"))
  assert notes == [GRAY_NOTE]
  np.testing.assert_array_equal(array, np.repeat(GRAY[..., None], 3, axis=-1))


def test_gray_alpha(tmp_path):
  la = Image.fromarray(np.dstack([GRAY, 255 - GRAY]), "LA")
  array, notes = images.read_image(save(tmp_path, la, "la.png"))
  assert sorted(notes) == sorted([ALPHA_NOTE, GRAY_NOTE])
  np.testing.assert_array_equal(array, np.repeat(GRAY[..., None], 3, axis=-1))


def test_rgba_drops_alpha(tmp_path):
  rgba = RNG.randint(0, 256, (6, 4, 4), dtype=np.uint8)
  array, notes = images.read_image(save(tmp_path, Image.fromarray(rgba, "RGBA"), "a.png"))
  assert notes == [ALPHA_NOTE]
  np.testing.assert_array_equal(array, rgba[..., :3])


def test_palette(tmp_path):
  path = save(tmp_path, palette_image(), "p.png")
  assert Image.open(path).mode == "P"
  array, notes = images.read_image(path)
  assert notes == [PALETTE_NOTE]
  np.testing.assert_array_equal(array, PALETTE_COLORS[GRAY % 4])


def test_palette_with_transparency(tmp_path):
  path = save(tmp_path, palette_image(), "pt.png", transparency=2)
  with Image.open(path) as image:
    assert image.mode == "P" and "transparency" in image.info
  array, notes = images.read_image(path)
  assert PALETTE_NOTE in notes and ALPHA_NOTE in notes
  np.testing.assert_array_equal(array, PALETTE_COLORS[GRAY % 4])


def test_bilevel(tmp_path):
  bits = GRAY > 128
  path = save(tmp_path, Image.fromarray(bits).convert("1"), "one.png")
  assert Image.open(path).mode == "1"
  array, notes = images.read_image(path)
  assert notes[0] == "bilevel converted to 8-bit" and GRAY_NOTE in notes
  np.testing.assert_array_equal(array, np.repeat(bits[..., None] * 255, 3, -1))


def test_16_bit_gray_rounds_to_8_bits(tmp_path):
  values = np.concatenate([
      np.array([0, 1, 128, 129, 385, 386, 65406, 65407, 65535]),
      RNG.randint(0, 65536, 36)]).astype(np.uint16).reshape(5, 9)
  path = save(tmp_path, Image.fromarray(values), "i16.png")
  with Image.open(path) as image:
    assert image.mode.startswith("I")
  array, notes = images.read_image(path)
  assert notes == ["16-bit samples rounded to 8 bits", GRAY_NOTE]
  expected = np.round(values / 257.).astype(np.uint8)  # Nearest of 255 steps.
  np.testing.assert_array_equal(array, np.repeat(expected[..., None], 3, -1))
  assert list(array[0, :9, 0]) == [0, 0, 0, 1, 1, 2, 254, 255, 255]


def test_cmyk_jpeg(tmp_path):
  cmyk = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # Pure red.
  cmyk.paste((0, 0, 0, 255), (8, 0, 16, 8))  # Black on the right.
  path = save(tmp_path, cmyk, "cmyk.jpg", quality=95)
  assert Image.open(path).mode == "CMYK"
  array, notes = images.read_image(path)
  assert notes == ["CMYK converted to RGB"]
  assert array.shape == (8, 16, 3)
  np.testing.assert_allclose(array[2:6, 1:5].reshape(-1, 3).mean(0), [255, 0, 0], atol=8)
  np.testing.assert_allclose(array[2:6, 11:15].reshape(-1, 3).mean(0), [0, 0, 0], atol=8)


def test_rgb_jpeg(tmp_path):
  path = save(tmp_path, Image.new("RGB", (16, 8), (200, 100, 50)), "rgb.jpg", quality=95)
  array, notes = images.read_image(path)
  assert notes == [] and array.shape == (8, 16, 3)
  np.testing.assert_allclose(array.reshape(-1, 3).mean(0), [200, 100, 50], atol=3)


def test_exif_rotation(tmp_path):
  rgb = np.zeros((8, 16, 3), np.uint8)
  rgb[:, :8] = 255  # Left half white.
  exif = Image.Exif()
  exif[0x0112] = 6  # Rotate 90 degrees clockwise to display.
  path = save(tmp_path, Image.fromarray(rgb), "rot.jpg", exif=exif.tobytes(), quality=95)
  array, notes = images.read_image(path)
  assert notes == ["rotated as its EXIF orientation says"]
  assert array.shape == (16, 8, 3)
  assert array[:6].mean() > 200 and array[10:].mean() < 50  # White went to the top.


def test_as_rgb8_arrays():
  gray16 = np.array([[0, 65535], [128, 129]], np.uint16)
  array, notes = images.as_rgb8(gray16)
  np.testing.assert_array_equal(array[..., 0], [[0, 255], [0, 1]])
  assert notes == ["16-bit samples rounded to 8 bits", GRAY_NOTE]
  rgba = RNG.randint(0, 256, (3, 2, 4), dtype=np.uint8)
  array, notes = images.as_rgb8(rgba)
  np.testing.assert_array_equal(array, rgba[..., :3])
  assert array.flags.c_contiguous and notes == [ALPHA_NOTE]
  for bad in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 5), np.uint8),
              np.zeros((0, 4, 3), np.uint8), np.zeros((4,), np.uint8),
              np.zeros((2, 2, 2, 3), np.uint8)):
    with pytest.raises(CodecError):
      images.as_rgb8(bad)


# Bad inputs -------------------------------------------------------------------
def png_chunk(kind: bytes, data: bytes) -> bytes:
  return (struct.pack(">I", len(data)) + kind + data
          + struct.pack(">I", zlib.crc32(kind + data)))


def png_claiming(width: int, height: int) -> bytes:
  """A tiny PNG whose header claims a width x height RGB image."""
  return (b"\x89PNG\r\n\x1a\n"
          + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
          + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
          + png_chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
  """A small JPEG whose frame header (SOF0) claims width x height."""
  buffer = io.BytesIO()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="JPEG")
  data = bytearray(buffer.getvalue())
  sof = data.index(b"\xff\xc0")
  data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
  return bytes(data)


def bad_inputs(tmp_path):
  photo = Image.fromarray(RNG.randint(0, 256, (64, 64, 3), dtype=np.uint8))
  buffer = io.BytesIO()
  photo.save(buffer, format="PNG")
  png = buffer.getvalue()
  files = {
      "text.png": b"this is not an image\n" * 10,
      "empty.png": b"",
      "truncated.png": png[:len(png) // 2],
      "header_only.png": png[:40],
      "bomb.png": png_claiming(100000, 100000),
      "just_over_limit.png": png_claiming(1 << 14, (1 << 13) + 1),  # MAX_PIXELS + 16384.
      "jpeg_bomb.jpg": jpeg_claiming(60000, 60000),
  }
  paths = {}
  for name, data in files.items():
    (tmp_path / name).write_bytes(data)
    paths[name] = str(tmp_path / name)
  (tmp_path / "folder.png").mkdir()
  paths["folder.png"] = str(tmp_path / "folder.png")
  paths["missing.png"] = str(tmp_path / "missing.png")
  os.mkfifo(tmp_path / "fifo.png")  # Opening it for reading would block.
  paths["fifo.png"] = str(tmp_path / "fifo.png")
  paths["under_a_file.png"] = str(tmp_path / "text.png" / "x.png")
  return paths


EXPECTED_MESSAGES = {
    "text.png": "not an image",
    "empty.png": "not an image",
    "truncated.png": "cannot decode",
    "header_only.png": "",
    "bomb.png": "too large",
    "just_over_limit.png": "too large",
    "folder.png": "directory",
    "missing.png": "no such file",
    "jpeg_bomb.jpg": "too large",
    "fifo.png": "not a regular file",
    "under_a_file.png": "Not a directory",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_MESSAGES))
def test_bad_inputs_fail_with_one_line_naming_the_file(tmp_path, name):
  path = bad_inputs(tmp_path)[name]
  with pytest.raises(CodecError) as info:
    images.read_image(path)
  message = str(info.value)
  assert EXPECTED_MESSAGES[name] in message and "\n" not in message
  assert path in message  # Says which file.


def test_devices_and_oversized_files_are_refused_unread(tmp_path):
  with pytest.raises(CodecError, match="not a regular file"):
    images.read_image("/dev/zero")  # Would never end.
  path = tmp_path / "big.png"
  path.write_bytes(b"\0" * 1000)
  with pytest.raises(CodecError, match="larger than the limit of 999 bytes"):
    images.read_bytes(str(path), max_bytes=999)
  assert len(images.read_bytes(str(path), max_bytes=1000)) == 1000


@pytest.mark.slow  # A subprocess.
def test_bad_inputs_do_not_allocate(tmp_path):
  """Refusing every bad input (bombs included) keeps the process small."""
  paths = bad_inputs(tmp_path)
  script = (
      "import sys\n"
      "from tfc_codecs import images\n"
      "from tfc_codecs.errors import CodecError\n"
      "for path in sys.argv[1:]:\n"
      "  try:\n"
      "    images.read_image(path)\n"
      "  except CodecError:\n"
      "    pass\n"
      "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])\n")
  result = subprocess.run([sys.executable, "-c", script, *paths.values()],
                          capture_output=True, text=True, timeout=120, check=True)
  assert int(result.stdout.split()[-1]) < 300 * 1024  # Peak RSS in KiB.


def test_bomb_is_tiny_on_disk(tmp_path):
  path = bad_inputs(tmp_path)["bomb.png"]
  assert os.path.getsize(path) < 200
  with open(path, "rb") as f:
    data = f.read()
  assert data[12:16] == b"IHDR"
  assert struct.unpack(">II", data[16:24]) == (100000, 100000)


def test_pillow_global_limit_is_left_alone(tmp_path):
  """The pixel limit of one read must not leak into Pillow's global state."""
  before = Image.MAX_IMAGE_PIXELS
  rgb = RNG.randint(0, 256, (20, 30, 3), dtype=np.uint8)
  path = save(tmp_path, Image.fromarray(rgb), "small.png")
  with pytest.raises(CodecError):
    images.read_image(path, max_pixels=100)
  images.read_image(path, max_pixels=10 ** 9)
  assert Image.MAX_IMAGE_PIXELS == before


def test_custom_pixel_limit(tmp_path):
  rgb = RNG.randint(0, 256, (20, 30, 3), dtype=np.uint8)
  path = save(tmp_path, Image.fromarray(rgb), "small.png")
  with pytest.raises(CodecError, match="limit"):
    images.read_image(path, max_pixels=20 * 30 - 1)
  array, _ = images.read_image(path, max_pixels=20 * 30)
  np.testing.assert_array_equal(array, rgb)


def test_default_limit_admits_camera_photos():
  """A 48-megapixel photo's size passes the default limit (the file holds
  almost no pixel data, so it then fails to decode); 2**28 pixels do not."""
  with pytest.raises(CodecError) as info:
    images.decode_image(png_claiming(8000, 6000), "photo.png")
  assert "limit" not in str(info.value) and "cannot decode" in str(info.value)
  with pytest.raises(CodecError, match=f"limit of {images.MAX_PIXELS} pixels"):
    images.decode_image(png_claiming(1 << 14, 1 << 14), "huge.png")
  with pytest.raises(CodecError, match="limit of 47999999 pixels"):
    images.decode_image(png_claiming(8000, 6000), "photo.png", max_pixels=8000 * 6000 - 1)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_damaged_files_of_many_formats_fail_with_codec_error():
  """Random byte damage to small files of several formats: each either
  decodes to uint8 RGB or fails with a CodecError, never another exception."""
  rng = np.random.RandomState(3)
  rgb = Image.fromarray(rng.randint(0, 256, (24, 32, 3), dtype=np.uint8))
  exif = Image.Exif()
  exif[0x0112] = 6
  seeds = []
  for fmt, image, kwargs in (("PNG", rgb, {}), ("JPEG", rgb, {"exif": exif.tobytes()}),
                             ("GIF", rgb.convert("P"), {}), ("BMP", rgb, {}),
                             ("TIFF", rgb, {}), ("PNG", Image.fromarray(GRAY), {})):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    seeds.append(buffer.getvalue())
  escaped = []
  for seed in seeds:
    for trial in range(150):
      data = bytearray(seed)
      for _ in range(rng.randint(1, 4)):
        data[rng.randint(len(data))] = rng.randint(256)
      if trial % 4 == 0:
        data = data[:rng.randint(len(data))]
      try:
        array, _ = images.decode_image(bytes(data), "damaged")
      except CodecError:
        continue
      except Exception as e:  # pylint: disable=broad-except
        escaped.append(f"{type(e).__name__}: {e}")
        continue
      assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3
  assert escaped == []
