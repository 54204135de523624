"""The `.tfci` bitstream container.

Layout (big-endian):
    magic        4 bytes   b"TFCI"
    version      u8        FORMAT_VERSION
    coder        u8        entropy coder of the payloads (1: TFC range coder)
    name_length  u8        1..MAX_NAME
    codec        bytes     codec name, ASCII
    fingerprint  8 bytes   hash of the model's weights and tables
    height       u32
    width        u32
    count        u16       number of payload strings
    payloads     count x (u32 length, bytes)
    crc32        u32       CRC-32 of everything before it

`parse` validates structure, sizes and checksum before anything is decoded,
so a bad file fails with a one-line `CodecError` and no large allocation.
"""

import dataclasses
import struct
import zlib
from typing import List, Tuple

from tfc_codecs.errors import CodecError

MAGIC = b"TFCI"
FORMAT_VERSION = 1
CODER_RANGE = 1
CODER_NAMES = {CODER_RANGE: "tfc-range-coder"}
MAX_NAME = 32
MAX_PAYLOADS = 1024
MAX_SIDE = 1 << 16
_FIXED = struct.Struct(">4sBBB")
_SIZE = struct.Struct(">8sIIH")
_U32 = struct.Struct(">I")


@dataclasses.dataclass(frozen=True)
class Bitstream:
  """The decoded fields of a `.tfci` file."""
  codec: str
  fingerprint: bytes
  height: int
  width: int
  payloads: Tuple[bytes, ...]
  coder: int = CODER_RANGE
  version: int = FORMAT_VERSION

  @property
  def num_pixels(self) -> int:
    return self.height * self.width

  def header_bytes(self) -> int:
    return _FIXED.size + len(self.codec) + _SIZE.size + 4 * len(self.payloads) + 4


def serialize(stream: Bitstream) -> bytes:
  """The file bytes of `stream`."""
  name = stream.codec.encode("ascii")
  if not 1 <= len(name) <= MAX_NAME:
    raise ValueError(f"codec name must have 1..{MAX_NAME} characters")
  if len(stream.fingerprint) != 8:
    raise ValueError("fingerprint must be 8 bytes")
  if not (1 <= stream.height < MAX_SIDE and 1 <= stream.width < MAX_SIDE):
    raise CodecError(f"image size {stream.height}x{stream.width} is not supported "
                     f"(each side must be 1..{MAX_SIDE - 1})")
  parts: List[bytes] = [
      _FIXED.pack(MAGIC, stream.version, stream.coder, len(name)), name,
      _SIZE.pack(stream.fingerprint, stream.height, stream.width,
                 len(stream.payloads))]
  for payload in stream.payloads:
    parts += [_U32.pack(len(payload)), payload]
  body = b"".join(parts)
  return body + _U32.pack(zlib.crc32(body))


def parse(data: bytes, max_pixels: int) -> Bitstream:
  """Validates and splits a `.tfci` file; raises CodecError on any defect."""
  data = memoryview(data)
  if len(data) < _FIXED.size or bytes(data[:4]) != MAGIC:
    raise CodecError("not a .tfci file (bad magic bytes)")
  _, version, coder, name_length = _FIXED.unpack_from(data)
  if version != FORMAT_VERSION:
    raise CodecError(f"unsupported .tfci format version {version} "
                     f"(this tfc_codecs reads version {FORMAT_VERSION})")
  if coder not in CODER_NAMES:
    raise CodecError(f"unknown entropy coder id {coder} in header")
  if not 1 <= name_length <= MAX_NAME:
    raise CodecError("corrupt header (bad codec name length)")
  offset = _FIXED.size
  if len(data) < offset + name_length + _SIZE.size + 4:
    raise CodecError("truncated file (header incomplete)")
  try:
    codec = bytes(data[offset:offset + name_length]).decode("ascii")
  except UnicodeDecodeError:
    raise CodecError("corrupt header (codec name is not ASCII)") from None
  offset += name_length
  fingerprint, height, width, count = _SIZE.unpack_from(data, offset)
  offset += _SIZE.size
  if not (1 <= height < MAX_SIDE and 1 <= width < MAX_SIDE):
    raise CodecError(f"corrupt header (image size {height}x{width})")
  if height * width > max_pixels:
    raise CodecError(f"header claims a {height}x{width} image, more than the "
                     f"limit of {max_pixels} pixels")
  if count > MAX_PAYLOADS:
    raise CodecError(f"corrupt header ({count} payloads)")
  payloads = []
  for _ in range(count):
    if len(data) < offset + 4:
      raise CodecError("truncated file (payload table incomplete)")
    (length,) = _U32.unpack_from(data, offset)
    offset += 4
    if len(data) < offset + length + 4:
      raise CodecError("truncated file (payload shorter than its header says)")
    payloads.append(bytes(data[offset:offset + length]))
    offset += length
  if len(data) != offset + 4:
    raise CodecError(f"corrupt file ({len(data) - offset - 4} unexpected "
                     "trailing bytes)")
  (crc,) = _U32.unpack_from(data, offset)
  if crc != zlib.crc32(data[:offset]):
    raise CodecError("corrupt file (checksum mismatch)")
  return Bitstream(codec=codec, fingerprint=fingerprint, height=height,
                   width=width, payloads=tuple(payloads), coder=coder,
                   version=version)
