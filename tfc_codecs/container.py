"""The `.tfci` bitstream container: its layout, written and read in Python.

The layout is defined once, here: the header fields in file order
(`header_fields`), the payload framing (`PAYLOAD`), the limits and the entropy
coder ids. `serialize`/`parse` below, the same in TensorFlow ops
(`graph_container`, used by exported SavedModels), the decoder fuzzer
(tests/stress/fuzz_decoder.py) and docs/bitstream.md (`layout_table`) all
follow it. Integers are big-endian and unsigned.

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
import re
import struct
import zlib
from typing import Callable, Dict, List, Tuple

from tfc_codecs.errors import CodecError

MAGIC = b"TFCI"
FORMAT_VERSION = 2
CODEC_NAME = re.compile(rb"[A-Za-z0-9._-]+")  # Printable: error messages quote it.
MAX_NAME = 32
MAX_PAYLOADS = 1024
MAX_SIDE = 1 << 16  # Height and width are below this.

# Entropy coder ids (the `coder` byte).
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


@dataclasses.dataclass(frozen=True)
class Field:
  """A field of the layout: `size` bytes (0: as many as an earlier field
  says), an unsigned integer if `integer`, else bytes."""
  name: str
  size: int
  integer: bool
  meaning: str


# The header: PREFIX, the codec name, the version's FIELDS, HEADER_SUM.
PREFIX = (
    Field("magic", 4, False, f"`{MAGIC.decode()}`"),
    Field("version", 1, True, f"format version, {FORMAT_VERSION} (version 1 is still read)"),
    Field("coder", 1, True, "entropy coder of the payloads (coder ids below)"),
    Field("name_length", 1, True, f"length of the codec name, 1..{MAX_NAME}"),
)
NAME = Field("codec", 0, False, "codec name (`name_length` bytes of ASCII letters, "
             "digits, `.`, `_`, `-`)")
FINGERPRINT = Field("fingerprint", 8, False, "hash of the model's weights and tables")
_SIZES = (
    FINGERPRINT,
    Field("height", 4, True, f"image height, 1..{MAX_SIDE - 1}"),
    Field("width", 4, True, f"image width, 1..{MAX_SIDE - 1}"),
    Field("count", 2, True, f"number of payloads, at most {MAX_PAYLOADS}"),
)
_QUALITY = Field("quality", 1, True, "rate point the file was made at (0: the model's "
                 "only one); not in version 1")
FIELDS = {1: _SIZES, 2: _SIZES + (_QUALITY,)}  # After the name, per format version.
HEADER_SUM = Field("header_sum", 4, True, "Adler-32 of all header bytes before it "
                   "(version 1: CRC-32)")
# Then `count` payloads, each framed so.
PAYLOAD_LENGTH = Field("length", 4, True, "payload length in bytes")
PAYLOAD_SUM = Field("payload_sum", 4, True, "Adler-32 of the payload bytes (version 1: CRC-32)")
PAYLOAD = (PAYLOAD_LENGTH, Field("payload", 0, False, "`length` bytes"), PAYLOAD_SUM)
CHECKSUMS: Dict[int, Callable[[bytes], int]] = {1: zlib.crc32, 2: zlib.adler32}
READABLE_VERSIONS = tuple(sorted(FIELDS))


def header_fields(version: int = FORMAT_VERSION) -> Tuple[Field, ...]:
  """The header fields of a format version, in file order."""
  return PREFIX + (NAME,) + FIELDS[version] + (HEADER_SUM,)


def header_offsets(name_length: int, version: int = FORMAT_VERSION) -> Dict[str, int]:
  """Field name -> its offset in a header whose codec name has `name_length`
  bytes; "payloads" -> where the first payload's length field starts."""
  offsets, offset = {}, 0
  for field in header_fields(version):
    offsets[field.name] = offset
    offset += field.size or name_length
  offsets["payloads"] = offset
  return offsets


def _struct(fields) -> struct.Struct:
  codes = {1: "B", 2: "H", 4: "I"}
  return struct.Struct(">" + "".join(codes[f.size] if f.integer else f"{f.size}s"
                                     for f in fields))


_PREFIX = _struct(PREFIX)
_FIELDS = {version: _struct(fields) for version, fields in FIELDS.items()}
_NUMBERS = _struct(FIELDS[FORMAT_VERSION][1:])  # The fields after the fingerprint.
_U32 = _struct([HEADER_SUM])
assert _U32.size == PAYLOAD_LENGTH.size == PAYLOAD_SUM.size


def layout_table() -> str:
  """The layout (current version) and the coder ids as Markdown tables
  (docs/bitstream.md shows them)."""
  lines = ["| field | bytes | meaning |", "|---|---|---|"]
  for field in header_fields() + PAYLOAD:
    size = field.size or f"`{'name_length' if field is NAME else 'length'}`"
    lines.append(f"| `{field.name}` | {size} | {field.meaning} |")
  lines += ["", "| coder | name | decoded |", "|---|---|---|"]
  for coder in sorted(set(CODER_NAMES) | set(RETIRED_CODERS)):
    if coder in CODER_NAMES:
      lines.append(f"| {coder} | `{CODER_NAMES[coder]}` | yes |")
    else:
      lines.append(f"| {coder} | retired | no: {RETIRED_CODERS[coder]} |")
  return "\n".join(lines) + "\n"


def header_start(coder: int, codec: str, fingerprint: bytes) -> bytes:
  """The header bytes before `height` (current version): the same for every
  file of one model and coder. ValueError if the name or fingerprint is bad."""
  name = codec.encode("ascii")
  if not 1 <= len(name) <= MAX_NAME or not CODEC_NAME.fullmatch(name):
    raise ValueError(f"codec name must be 1..{MAX_NAME} of [A-Za-z0-9._-]")
  if len(fingerprint) != FINGERPRINT.size:
    raise ValueError("fingerprint must be 8 bytes")
  return _PREFIX.pack(MAGIC, FORMAT_VERSION, coder, len(name)) + name + fingerprint


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
    """Bytes of the file that are not payload bytes (header and framing)."""
    return (header_offsets(len(self.codec), self.version)["payloads"]
            + (PAYLOAD_LENGTH.size + PAYLOAD_SUM.size) * len(self.payloads))


def serialize(stream: Bitstream) -> bytes:
  """The file bytes of `stream` (current format version)."""
  start = header_start(stream.coder, stream.codec, stream.fingerprint)
  if len(stream.payloads) > MAX_PAYLOADS:
    raise ValueError(f"at most {MAX_PAYLOADS} payloads fit in a .tfci file")
  if not 0 <= stream.quality < 256:
    raise ValueError("quality must fit in a byte")
  if not (1 <= stream.height < MAX_SIDE and 1 <= stream.width < MAX_SIDE):
    raise CodecError(f"image size {stream.height}x{stream.width} is not supported "
                     f"(each side must be 1..{MAX_SIDE - 1})")
  header = start + _NUMBERS.pack(stream.height, stream.width, len(stream.payloads),
                                 stream.quality)
  checksum = CHECKSUMS[FORMAT_VERSION]
  parts: List[bytes] = [header, _U32.pack(checksum(header))]
  for payload in stream.payloads:
    parts += [_U32.pack(len(payload)), payload, _U32.pack(checksum(payload))]
  return b"".join(parts)


def parse(data: bytes, max_pixels: int, allow_truncation: bool = False) -> Bitstream:
  """Validates and splits a `.tfci` file; raises CodecError on any defect,
  including a header claiming more than `max_pixels` pixels.

  With `allow_truncation`, a file cut exactly at a payload boundary yields
  the payloads before the cut (see `Bitstream.complete`).
  """
  data = memoryview(data)
  if len(data) < _PREFIX.size or bytes(data[:len(MAGIC)]) != MAGIC:
    raise CodecError("not a .tfci file (bad magic bytes)")
  _, version, coder, name_length = _PREFIX.unpack_from(data)
  if version not in READABLE_VERSIONS:
    raise CodecError(f"unsupported .tfci format version {version} (this "
                     f"tfc_codecs reads versions {', '.join(map(str, READABLE_VERSIONS))})")
  if not 1 <= name_length <= MAX_NAME:
    raise CodecError("corrupt header (bad codec name length)")
  offsets = header_offsets(name_length, version)
  offset = offsets[HEADER_SUM.name]
  if len(data) < offset + HEADER_SUM.size:
    raise CodecError("truncated file (header incomplete)")
  checksum = CHECKSUMS[version]
  if _U32.unpack_from(data, offset)[0] != checksum(data[:offset]):
    raise CodecError("corrupt header (checksum mismatch)")
  if coder in RETIRED_CODERS:
    raise CodecError(RETIRED_CODERS[coder])
  if coder not in CODER_NAMES:
    raise CodecError(f"unknown entropy coder id {coder} in header")
  name = bytes(data[offsets[NAME.name]:offsets[NAME.name] + name_length])
  if not CODEC_NAME.fullmatch(name):
    raise CodecError("corrupt header (codec name is not ASCII letters, digits, '.', '_', '-')")
  codec = name.decode("ascii")
  fingerprint, height, width, count, *quality = _FIELDS[version].unpack_from(
      data, offsets[FINGERPRINT.name])
  if not (1 <= height < MAX_SIDE and 1 <= width < MAX_SIDE):
    raise CodecError(f"corrupt header (image size {height}x{width})")
  if height * width > max_pixels:
    raise CodecError(f"header claims a {height}x{width} image, more than the "
                     f"limit of {max_pixels} pixels")
  if count > MAX_PAYLOADS:
    raise CodecError(f"corrupt header ({count} payloads)")
  offset = offsets["payloads"]
  payloads = []
  for index in range(count):
    if offset == len(data) and allow_truncation:
      break
    if len(data) < offset + PAYLOAD_LENGTH.size:
      raise CodecError(f"truncated file (payload {index + 1} of {count} incomplete)")
    (length,) = _U32.unpack_from(data, offset)
    end = offset + PAYLOAD_LENGTH.size + length
    if len(data) < end + PAYLOAD_SUM.size:
      raise CodecError(f"truncated file (payload {index + 1} of {count} incomplete)")
    payload = data[offset + PAYLOAD_LENGTH.size:end]
    if _U32.unpack_from(data, end)[0] != checksum(payload):
      raise CodecError(f"corrupt file (payload {index + 1} checksum mismatch)")
    payloads.append(bytes(payload))
    offset = end + PAYLOAD_SUM.size
  if len(data) != offset:
    raise CodecError(f"corrupt file ({len(data) - offset} unexpected trailing bytes)")
  return Bitstream(codec=codec, fingerprint=fingerprint, height=height,
                   width=width, payloads=tuple(payloads), coder=coder,
                   quality=quality[0] if quality else 0, version=version,
                   declared_payloads=count)
