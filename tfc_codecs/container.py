"""The `.tfci` bitstream container.

Layout (big-endian):
    magic        4 bytes   b"TFCI"
    version      u8        FORMAT_VERSION
    coder        u8        coder of the payloads (3: range coder with an escape
                           section, see range_coding.py; 5: rANS in stock
                           TensorFlow ops, see stock_coding.py; 2: raw bits)
    name_length  u8        1..MAX_NAME
    codec        bytes     codec name: ASCII letters, digits, '.', '_', '-'
    fingerprint  8 bytes   hash of the model's weights and tables
    height       u32
    width        u32
    count        u16       number of payload strings
    quality      u8        rate point the file was made at (0: the model's only one)
    header_sum   u32       Adler-32 of the header fields above
    payloads     count x (u32 length, bytes, u32 Adler-32 of the bytes)

Checksums are zlib's Adler-32, which stock TensorFlow ops compute exactly
(`graph_container`), so an exported SavedModel writes byte-identical files.
Version 1 files (no quality byte, CRC-32 checksums) are still read. Coder 1
(TFC's in-place overflow coding, tfc_codecs before 0.2) is refused: its
decoder can loop forever on a corrupt payload. Coder 4 (the stock coder's
first payload layout, tfc_codecs 0.2) is refused too.

Each payload carries its own checksum, so a file cut at a payload boundary is
recognizable as such: progressive codecs decode the payloads that arrived
(`allow_truncation=True`); for everything else it is an error. `parse`
validates structure, sizes and checksums before anything is decoded, so a bad
file fails with a one-line `CodecError` and no large allocation.
"""

import dataclasses
import struct
import zlib
import re
from typing import List, Tuple

from tfc_codecs.errors import CodecError

MAGIC = b"TFCI"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CODEC_NAME = re.compile(rb"[A-Za-z0-9._-]+")  # Printable: error messages quote it.
CODER_OVERFLOW = 1  # No longer decoded.
CODER_RAW = 2
CODER_RANGE = 3
CODER_STOCK_0_2 = 4  # No longer decoded.
CODER_STOCK = 5
CODER_NAMES = {CODER_RANGE: "range-coder+escapes", CODER_STOCK: "stock-rans+escapes",
               CODER_RAW: "raw-bits"}
RETIRED_CODERS = {  # Coders no longer decoded, and what to do with their files.
    CODER_OVERFLOW: "file made by tfc_codecs < 0.2 (overflow-coded payloads, no longer "
                    "decoded): decode it with tfc_codecs 0.1 and compress again",
    CODER_STOCK_0_2: "file made by tfc_codecs 0.2's stock-op coder (an older payload "
                     "layout): decode it with tfc_codecs 0.2 and compress again"}
CODER_OF_OPS = {"tfc": CODER_RANGE, "stock": CODER_STOCK}  # Entropy coder of each `ops`.
OPS_OF_CODER = {coder: ops for ops, coder in CODER_OF_OPS.items()}
MAX_NAME = 32
MAX_PAYLOADS = 1024
MAX_SIDE = 1 << 16
_FIXED = struct.Struct(">4sBBB")
_SIZE = {1: struct.Struct(">8sIIH"), 2: struct.Struct(">8sIIHB")}
_U32 = struct.Struct(">I")
_CHECKSUM = {1: zlib.crc32, 2: zlib.adler32}


@dataclasses.dataclass(frozen=True)
class Bitstream:
  """The decoded fields of a `.tfci` file."""
  codec: str
  fingerprint: bytes
  height: int
  width: int
  payloads: Tuple[bytes, ...]
  coder: int = CODER_RANGE
  quality: int = 0
  version: int = FORMAT_VERSION
  declared_payloads: int = -1  # In the header; more than len(payloads) if cut.

  @property
  def num_pixels(self) -> int:
    return self.height * self.width

  @property
  def complete(self) -> bool:
    return self.declared_payloads in (-1, len(self.payloads))

  def header_bytes(self) -> int:
    return (_FIXED.size + len(self.codec) + _SIZE[self.version].size + 4
            + 8 * len(self.payloads))


def serialize(stream: Bitstream) -> bytes:
  """The file bytes of `stream`."""
  name = stream.codec.encode("ascii")
  if not 1 <= len(name) <= MAX_NAME or not CODEC_NAME.fullmatch(name):
    raise ValueError(f"codec name must be 1..{MAX_NAME} of [A-Za-z0-9._-]")
  if len(stream.fingerprint) != 8:
    raise ValueError("fingerprint must be 8 bytes")
  if len(stream.payloads) > MAX_PAYLOADS:
    raise ValueError(f"at most {MAX_PAYLOADS} payloads fit in a .tfci file")
  if not 0 <= stream.quality < 256:
    raise ValueError("quality must fit in a byte")
  if not (1 <= stream.height < MAX_SIDE and 1 <= stream.width < MAX_SIDE):
    raise CodecError(f"image size {stream.height}x{stream.width} is not supported "
                     f"(each side must be 1..{MAX_SIDE - 1})")
  header = b"".join([
      _FIXED.pack(MAGIC, FORMAT_VERSION, stream.coder, len(name)), name,
      _SIZE[FORMAT_VERSION].pack(stream.fingerprint, stream.height, stream.width,
                                 len(stream.payloads), stream.quality)])
  checksum = _CHECKSUM[FORMAT_VERSION]
  parts: List[bytes] = [header, _U32.pack(checksum(header))]
  for payload in stream.payloads:
    parts += [_U32.pack(len(payload)), payload, _U32.pack(checksum(payload))]
  return b"".join(parts)


def parse(data: bytes, max_pixels: int, allow_truncation: bool = False) -> Bitstream:
  """Validates and splits a `.tfci` file; raises CodecError on any defect.

  With `allow_truncation`, a file cut exactly at a payload boundary yields
  the payloads before the cut (see `Bitstream.complete`).
  """
  data = memoryview(data)
  if len(data) < _FIXED.size or bytes(data[:4]) != MAGIC:
    raise CodecError("not a .tfci file (bad magic bytes)")
  _, version, coder, name_length = _FIXED.unpack_from(data)
  if version not in READABLE_VERSIONS:
    raise CodecError(f"unsupported .tfci format version {version} (this "
                     f"tfc_codecs reads versions {', '.join(map(str, READABLE_VERSIONS))})")
  if not 1 <= name_length <= MAX_NAME:
    raise CodecError("corrupt header (bad codec name length)")
  size = _SIZE[version]
  offset = _FIXED.size + name_length + size.size
  if len(data) < offset + 4:
    raise CodecError("truncated file (header incomplete)")
  checksum = _CHECKSUM[version]
  if _U32.unpack_from(data, offset)[0] != checksum(data[:offset]):
    raise CodecError("corrupt header (checksum mismatch)")
  if coder in RETIRED_CODERS:
    raise CodecError(RETIRED_CODERS[coder])
  if coder not in CODER_NAMES:
    raise CodecError(f"unknown entropy coder id {coder} in header")
  name = bytes(data[_FIXED.size:_FIXED.size + name_length])
  if not CODEC_NAME.fullmatch(name):
    raise CodecError("corrupt header (codec name is not ASCII letters, digits, '.', '_', '-')")
  codec = name.decode("ascii")
  fingerprint, height, width, count, *quality = size.unpack_from(
      data, _FIXED.size + name_length)
  if not (1 <= height < MAX_SIDE and 1 <= width < MAX_SIDE):
    raise CodecError(f"corrupt header (image size {height}x{width})")
  if height * width > max_pixels:
    raise CodecError(f"header claims a {height}x{width} image, more than the "
                     f"limit of {max_pixels} pixels")
  if count > MAX_PAYLOADS:
    raise CodecError(f"corrupt header ({count} payloads)")
  offset += 4
  payloads = []
  for index in range(count):
    if offset == len(data) and allow_truncation:
      break
    if len(data) < offset + 4:
      raise CodecError(f"truncated file (payload {index + 1} of {count} incomplete)")
    (length,) = _U32.unpack_from(data, offset)
    end = offset + 4 + length
    if len(data) < end + 4:
      raise CodecError(f"truncated file (payload {index + 1} of {count} incomplete)")
    payload = data[offset + 4:end]
    if _U32.unpack_from(data, end)[0] != checksum(payload):
      raise CodecError(f"corrupt file (payload {index + 1} checksum mismatch)")
    payloads.append(bytes(payload))
    offset = end + 4
  if len(data) != offset:
    raise CodecError(f"corrupt file ({len(data) - offset} unexpected trailing bytes)")
  return Bitstream(codec=codec, fingerprint=fingerprint, height=height,
                   width=width, payloads=tuple(payloads), coder=coder,
                   quality=quality[0] if quality else 0, version=version,
                   declared_payloads=count)
