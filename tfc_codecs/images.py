"""Reading images into the codecs' uint8 RGB contract, and writing PNGs.

Every conversion (palette, grayscale, alpha, 16-bit, EXIF rotation) is
explicit and returned as a note for the user.
"""

import glob
import io
import os
import stat
import warnings
from typing import List, Tuple

import numpy as np
from absl import logging
from PIL import Image, ImageOps

from tfc_codecs.errors import CodecError

# The default limit on an image's pixels (images read, `.tfci` headers parsed):
# 128 Mi pixels, more than any camera makes (a 102-megapixel 11648x8736 photo
# fits). The codecs transform in tiles, so memory grows only with the image
# arrays: 8000x6000 peaks at 2.1-3.3 GiB resident per codec
# (benchmarks/results/huge_image.json). `--max_pixels` / `load(max_pixels=)`
# set another limit.
MAX_PIXELS = 128 << 20
MAX_FILE_BYTES = 1 << 30  # Larger inputs are refused before reading.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".webp", ".tif", ".tiff")


def list_images(pattern: str) -> List[str]:
  """Readable image files matching a glob pattern or in a folder; several
  patterns or folders are separated by commas (e.g. two training sets)."""
  files = set()
  for part in (p.strip() for p in pattern.split(",")):
    if not part:
      continue
    if os.path.isdir(part):
      part = os.path.join(part, "*")
    files.update(f for f in glob.glob(part)
                 if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(f))
  files = sorted(files)
  readable = [f for f in files if _has_image_header(f)]
  if len(readable) < len(files):
    logging.warning("skipping %d unreadable image files", len(files) - len(readable))
  if not readable:
    raise CodecError(f"no readable images match {pattern!r}")
  return readable


def _has_image_header(path: str) -> bool:
  try:
    with Image.open(path) as image:
      return image.size[0] > 0 and image.size[1] > 0
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
    return False  # Unreadable, or a size no decoder should attempt.


def as_rgb8(array: np.ndarray) -> Tuple[np.ndarray, List[str]]:
  """uint8 [H, W, 3] from a gray, gray+alpha, RGB or RGBA array of 8/16 bits."""
  array = np.asarray(array)
  notes = []
  if array.ndim == 2:
    array = array[..., None]
  if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
    raise CodecError(f"expected an HxW, HxWx1..4 image, got shape {array.shape}")
  if array.shape[0] < 1 or array.shape[1] < 1:
    raise CodecError(f"image is empty ({array.shape[0]}x{array.shape[1]})")
  if array.dtype == np.uint16:
    array = ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    notes.append("16-bit samples rounded to 8 bits")
  elif array.dtype != np.uint8:
    raise CodecError(f"expected uint8 or uint16 samples, got {array.dtype}")
  if array.shape[-1] in (2, 4):
    array = array[..., :-1]
    notes.append("alpha channel dropped")
  if array.shape[-1] == 1:
    array = np.repeat(array, 3, axis=-1)
    notes.append("grayscale expanded to RGB")
  return np.ascontiguousarray(array), notes


def _pil_to_array(image: Image.Image) -> Tuple[np.ndarray, List[str]]:
  notes = []
  mode = image.mode
  if mode == "P":
    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    notes.append("palette expanded to RGB")
  elif mode == "1":
    image = image.convert("L")
    notes.append("bilevel converted to 8-bit")
  elif mode.startswith("I;16"):
    return as_rgb8(np.asarray(image, dtype=np.uint16))
  elif mode in ("I", "F"):
    values = np.asarray(image)
    if mode == "I" and values.min() >= 0 and values.max() <= 65535:
      return as_rgb8(values.astype(np.uint16))
    raise CodecError(f"unsupported image mode {mode} (32-bit samples)")
  elif mode not in ("L", "LA", "RGB", "RGBA"):
    image = image.convert("RGB")
    notes.append(f"{mode} converted to RGB")
  array, more = as_rgb8(np.asarray(image))
  return array, notes + more


def decode_image(data: bytes, name: str = "image",
                 max_pixels: int = MAX_PIXELS) -> Tuple[np.ndarray, List[str]]:
  """Decodes image file bytes (any Pillow format) to uint8 RGB."""
  previous_limit = Image.MAX_IMAGE_PIXELS  # Pillow's limit is global: restore it.
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      Image.MAX_IMAGE_PIXELS = max_pixels
      with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        if width * height > max_pixels:
          raise CodecError(f"{name}: {width}x{height} image exceeds the limit of "
                           f"{max_pixels} pixels")
        transposed = ImageOps.exif_transpose(image)
        notes = [] if transposed.size == image.size and transposed is image else []
        if image.getexif().get(0x0112, 1) != 1:
          notes.append("rotated as its EXIF orientation says")
        transposed.load()
        array, more = _pil_to_array(transposed)
  except CodecError:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning):
    raise CodecError(f"{name}: image is too large (more than the limit of "
                     f"{max_pixels} pixels)") from None
  except Image.UnidentifiedImageError:
    raise CodecError(f"{name}: not an image file Pillow can read") from None
  except (OSError, ValueError, SyntaxError, EOFError) as e:
    raise CodecError(f"{name}: cannot decode image ({e})") from None
  finally:
    Image.MAX_IMAGE_PIXELS = previous_limit
  return array, notes + more


def read_image(path: str, max_pixels: int = MAX_PIXELS) -> Tuple[np.ndarray, List[str]]:
  """Reads an image file to uint8 RGB; notes say what was converted."""
  return decode_image(read_bytes(path), path, max_pixels)


def read_bytes(path: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
  """The bytes of a regular file, or a one-line CodecError. Devices, pipes
  and sockets are refused (they can block or never end), as are files over
  `max_bytes`."""
  try:
    mode = os.stat(path).st_mode
    if stat.S_ISDIR(mode):
      raise CodecError(f"{path} is a directory")
    if not stat.S_ISREG(mode):
      raise CodecError(f"{path} is not a regular file")
    with open(path, "rb") as f:
      data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
      raise CodecError(f"{path} is larger than the limit of {max_bytes} bytes")
    return data
  except FileNotFoundError:
    raise CodecError(f"{path}: no such file") from None
  except OSError as e:
    raise CodecError(f"{path}: {e.strerror}") from None


def encode_png(image: np.ndarray) -> bytes:
  """PNG bytes of a uint8 [H, W, 3] image, by TensorFlow's encoder: the same
  bytes an exported SavedModel's `decompress` signature returns."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.io.encode_png(tf.constant(np.asarray(image, np.uint8))).numpy()
