#!/usr/bin/env python3
"""Fuzzing the `.tfci` decoders: `decompress` and `info`, library and CLI.

Seeds are real `.tfci` files made by the tiny test models (testdata/models/)
of every codec, with both entropy coders (range coder and stock-op rANS), plus the regression corpus (testdata/fuzz_corpus/). Each input
is a seed mutated by one to three mutations: bit flips, byte overwrites,
truncation, extension, header field changes (version, coder, name, fingerprint,
height, width, payload count, quality), payload length fields, swapped fields
and payloads, replaced/cut/spliced payloads, and huge claimed sizes. Half the
inputs then get their Adler-32 checksums recomputed wherever the (mutated)
layout puts them, so the mutation passes the container and reaches the entropy
decoder and the synthesis transforms.

The oracle (`check`): an input either decodes to a uint8 image of exactly the
size its header declares, or fails with a `CodecError` whose message is one
non-empty line. Anything else is a crash. Every input must finish within a
time limit (a soft limit of wall time reported as "slow", and a hard one of the
worker's CPU time after which it is killed and the input recorded as a hang), and the worker's
resident memory must stay under a bound. Headers claiming more pixels than
the decoder's limit must be rejected before any decoding (checked by time and
by the decoder never being called: such inputs must fail in `container.parse`).

Long run (outside the test suite; writes benchmarks/results/fuzz_decoder.json):

    nice -n 15 python tests/stress/fuzz_decoder.py --inputs 100000
    nice -n 15 python tests/stress/fuzz_decoder.py --inputs 100000 --resume  # continue

Inputs are generated deterministically from (--seed, codec, index), so a run
is reproducible and `--resume` continues at the next index of each codec.
Inputs that crash, hang or break the oracle are written to
testdata/fuzz_corpus/<codec>/ (the regression corpus the tests replay).
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import random
import re
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
  sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tfc_codecs import container  # pylint: disable=wrong-import-position

MODELS = {
    "channelwise": REPO / "testdata" / "models" / "channelwise_tiny",
    "channelwise-vr": REPO / "testdata" / "models" / "channelwise_vr_tiny",
    "factorized": REPO / "testdata" / "models" / "factorized_tiny",
    "factorized-vr": REPO / "testdata" / "models" / "factorized_vr_tiny",
    "hyperprior": REPO / "testdata" / "models" / "hyperprior_tiny",
    "hyperprior-vr": REPO / "testdata" / "models" / "hyperprior_vr_tiny",
    "rnn": REPO / "testdata" / "models" / "rnn_tiny",
}
CORPUS = REPO / "testdata" / "fuzz_corpus"
RESULTS = REPO / "benchmarks" / "results" / "fuzz_decoder.json"
PHOTO = REPO / "testdata" / "images" / "bsds_crop_0.png"

SOFT_SECONDS = 10.  # An input slower than this is reported ("slow").
HARD_SECONDS = 120.  # CPU seconds on one input after which the worker is killed ("hang").
RSS_BOUND = 6 << 30  # Resident memory bound of a fuzzing worker.
_PREFIX = container.header_offsets(0)  # Offsets of the fields before the codec name.
_LENGTH, _SUM = container.PAYLOAD_LENGTH.size, container.PAYLOAD_SUM.size
_FRAME = _LENGTH + _SUM  # Bytes of a payload's framing.


# Layout of a (possibly damaged) file -----------------------------------------
@dataclasses.dataclass
class Layout:
  """Where the fields of a .tfci file are, read as the decoder would read it."""
  version: int
  offsets: Dict[str, int]  # Header field -> offset (`container.header_offsets`).
  payloads: List[Tuple[int, int]]  # (offset of the length field, length).

  @property
  def header_end(self) -> int:  # Offset of the header checksum.
    return self.offsets[container.HEADER_SUM.name]

  def field(self, name: str) -> Tuple[int, int]:
    """(offset, size) of a header field after the codec name."""
    sizes = {f.name: f.size for f in container.FIELDS[self.version]}
    return self.offsets[name], sizes[name]


def _uint(data: bytes, offset: int, size: int) -> int:
  return int.from_bytes(data[offset:offset + size], "big")


def _pack(value: int, size: int) -> bytes:
  return (value % (1 << 8 * size)).to_bytes(size, "big")


def layout(data: bytes) -> Optional[Layout]:
  """The field offsets of `data`, following its own (maybe wrong) lengths;
  None if not even the header can be located."""
  prefix = container.header_offsets(0)
  if len(data) < prefix[container.NAME.name]:
    return None
  version = data[prefix["version"]]
  if version not in container.FIELDS:
    return None
  offsets = container.header_offsets(data[prefix["name_length"]], version)
  if len(data) < offsets["payloads"]:
    return None
  where = Layout(version, offsets, [])
  count = _uint(data, *where.field("count"))
  offset = offsets["payloads"]
  for _ in range(min(count, 4096)):
    if len(data) < offset + _LENGTH:
      break
    length = _uint(data, offset, _LENGTH)
    if len(data) < offset + _FRAME + length:
      break
    where.payloads.append((offset, length))
    offset += _FRAME + length
  return where


def fix_checksums(data: bytes) -> bytes:
  """Recomputes the header and payload checksums where the layout puts them."""
  where = layout(data)
  if where is None:
    return data
  checksum = container.CHECKSUMS[where.version]
  out = bytearray(data)
  out[where.header_end:where.header_end + container.HEADER_SUM.size] = _pack(
      checksum(bytes(out[:where.header_end])), container.HEADER_SUM.size)
  for offset, length in where.payloads:
    start = offset + _LENGTH
    out[start + length:start + length + _SUM] = _pack(
        checksum(bytes(out[start:start + length])), _SUM)
  return bytes(out)


def _put(data: bytes, offset: int, value: bytes) -> bytes:
  if offset < 0 or offset + len(value) > len(data):
    return data
  return data[:offset] + value + data[offset + len(value):]


# Mutations ------------------------------------------------------------------
INTERESTING_U32 = (0, 1, 2, 7, 8, 15, 16, 17, 63, 64, 65, 255, 256, 4095, 4096,
                   65535, 65536, 65537, 1 << 20, 0x7FFFFFFF, 0x80000000,
                   0xFFFFFFFE, 0xFFFFFFFF)
INTERESTING_SIDES = (0, 1, 2, 3, 15, 16, 17, 63, 64, 65, 255, 4096, 65535, 65536,
                     0x7FFFFFFF, 0xFFFFFFFF)


def _random_u32(rng: random.Random, original: int) -> int:
  pick = rng.random()
  if pick < 0.5:
    return rng.choice(INTERESTING_U32)
  if pick < 0.8:
    return max(0, min(0xFFFFFFFF, original + rng.randint(-64, 64)))
  return rng.getrandbits(32)


def _side(rng: random.Random, original: int) -> int:
  """A new height or width: boundary values, nearby values, huge claims, and
  (rarely) a large legal size, which the decoder then has to fill."""
  pick = rng.random()
  if pick < 0.4:
    return rng.choice(INTERESTING_SIDES)
  if pick < 0.8:
    return max(0, original + rng.randint(-70, 70))
  if pick < 0.995:
    return rng.randint(0, 0xFFFFFFFF)
  return rng.randint(1000, 4000)  # Legal-size claims up to 16 megapixels.


def m_bit_flips(rng, data, where):
  out = bytearray(data)
  for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
    if out:
      i = rng.randrange(len(out))
      out[i] ^= 1 << rng.randrange(8)
  return bytes(out)


def m_bytes(rng, data, where):
  out = bytearray(data)
  for _ in range(rng.randint(1, 4)):
    if out:
      out[rng.randrange(len(out))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
  return bytes(out)


def m_header_bytes(rng, data, where):
  """Damage confined to the header (fields, name, fingerprint)."""
  end = where.header_end if where else min(len(data), 40)
  out = bytearray(data)
  if end:
    i = rng.randrange(end)
    out[i] = rng.randrange(256) if rng.random() < 0.5 else out[i] ^ (1 << rng.randrange(8))
  return bytes(out)


def m_truncate(rng, data, where):
  if where and where.payloads and rng.random() < 0.4:  # At a payload boundary.
    offset, _ = rng.choice(where.payloads)
    return data[:offset]
  return data[:rng.randrange(len(data) + 1)]


def m_extend(rng, data, where):
  pick = rng.random()
  if pick < 0.3 and where and where.payloads:  # A whole extra payload.
    offset, length = rng.choice(where.payloads)
    return data + data[offset:offset + _FRAME + length]
  if pick < 0.6:
    return data + bytes(rng.randint(1, 64))
  return data + rng.randbytes(rng.choice((1, 4, 8, 100, 5000)))


def m_version(rng, data, where):
  return _put(data, _PREFIX["version"], bytes([rng.choice((0, 1, 2, 3, 255))]))


def m_coder(rng, data, where):
  return _put(data, _PREFIX["coder"], bytes([rng.choice((0, 1, 2, 3, 4, 255))]))


def m_name(rng, data, where):
  pick = rng.random()
  if pick < 0.3:  # Another name length: the whole layout shifts.
    return _put(data, _PREFIX["name_length"],
                bytes([rng.choice((0, 1, 5, 10, 13, 32, 33, 255))]))
  if where is None:
    return data
  names = [b"channelwise", b"channelwise-vr", b"factorized", b"factorized-vr", b"hyperprior",
           b"hyperprior-vr", b"rnn", b"\xff" * 3]
  name = rng.choice(names)
  start, end = where.offsets[container.NAME.name], where.offsets[container.FINGERPRINT.name]
  if pick < 0.7:  # Another codec's name, the rest of the header kept.
    return data[:_PREFIX["name_length"]] + bytes([len(name)]) + name + data[end:]
  return _put(data, start + rng.randrange(max(1, end - start)), bytes([rng.randrange(256)]))


def m_fingerprint(rng, data, where):
  if where is None:
    return data
  offset, size = where.field(container.FINGERPRINT.name)
  if rng.random() < 0.5:
    return _put(data, offset, rng.randbytes(size))
  return _put(data, offset + rng.randrange(size), bytes([rng.randrange(256)]))


def m_size(rng, data, where):
  """Height and/or width: huge claims, zero, nearby values."""
  if where is None:
    return data
  (top, size), (left, _) = where.field("height"), where.field("width")
  height, width = _uint(data, top, size), _uint(data, left, size)
  pick = rng.random()
  if pick < 0.35:
    height = _side(rng, height)
  elif pick < 0.7:
    width = _side(rng, width)
  else:
    height, width = _side(rng, height), _side(rng, width)
  return _put(_put(data, top, _pack(height, size)), left, _pack(width, size))


def m_count(rng, data, where):
  if where is None:
    return data
  offset, size = where.field("count")
  count = _uint(data, offset, size)
  value = rng.choice((0, 1, 2, 3, count - 1, count + 1, 16, 17, 1024, 1025, 65535,
                      rng.randrange(65536)))
  return _put(data, offset, _pack(value, size))


def m_quality(rng, data, where):
  if where is None or "quality" not in where.offsets:
    return data
  offset, size = where.field("quality")
  return _put(data, offset, _pack(rng.choice((0, 1, 2, 3, 7, 8, 16, 17, 255)), size))


def m_length(rng, data, where):
  """A payload's length field: huge, zero, off by a little."""
  if where is None or not where.payloads:
    return data
  offset, length = rng.choice(where.payloads)
  return _put(data, offset, _pack(_random_u32(rng, length), container.PAYLOAD_LENGTH.size))


def m_swap(rng, data, where):
  """Swapped fields: height <-> width, two payloads, a payload's checksum and length."""
  if where is None:
    return data
  pick = rng.random()
  if pick < 0.3:
    (top, size), (left, _) = where.field("height"), where.field("width")
    assert left == top + size
    return data[:top] + data[left:left + size] + data[top:left] + data[left + size:]
  if pick < 0.75 and len(where.payloads) >= 2:
    a, b = sorted(rng.sample(range(len(where.payloads)), 2))
    (oa, la), (ob, lb) = where.payloads[a], where.payloads[b]
    pa, pb = data[oa:oa + _FRAME + la], data[ob:ob + _FRAME + lb]
    return data[:oa] + pb + data[oa + _FRAME + la:ob] + pa + data[ob + _FRAME + lb:]
  if where.payloads:
    offset, length = rng.choice(where.payloads)
    end = offset + _LENGTH + length
    assert _LENGTH == _SUM
    return (data[:offset] + data[end:end + _SUM] + data[offset + _LENGTH:end]
            + data[offset:offset + _LENGTH] + data[end + _SUM:])
  return data


def _replace_payload(data, where, index, payload):
  offset, length = where.payloads[index]
  return (data[:offset] + _pack(len(payload), _LENGTH) + payload
          + _pack(container.CHECKSUMS[container.FORMAT_VERSION](payload), _SUM)
          + data[offset + _FRAME + length:])


def m_payload(rng, data, where, donors=()):
  """A payload replaced: random bytes, zeros, cut, doubled, or from another file."""
  if where is None or not where.payloads:
    return data
  index = rng.randrange(len(where.payloads))
  offset, length = where.payloads[index]
  payload = data[offset + _LENGTH:offset + _LENGTH + length]
  pick = rng.random()
  if pick < 0.2:
    new = rng.randbytes(rng.choice((0, 1, 2, 5, length, length * 2 + 1)))
  elif pick < 0.3:
    new = bytes([rng.choice((0, 0xFF))]) * rng.choice((length, 1, 64))
  elif pick < 0.5:
    new = payload[:rng.randrange(length + 1)] if length else b""
  elif pick < 0.6:
    new = payload + payload
  elif pick < 0.8 and donors:
    donor = rng.choice(donors)
    donor_layout = layout(donor)
    if donor_layout is None or not donor_layout.payloads:
      return data
    o, n = rng.choice(donor_layout.payloads)
    new = donor[o + _LENGTH:o + _LENGTH + n]
  else:
    out = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
      if out:
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    new = bytes(out)
  return _replace_payload(data, where, index, new)


def m_drop_payload(rng, data, where):
  """A payload removed (or duplicated), the count field kept or adjusted."""
  if where is None or not where.payloads:
    return data
  offset, length = rng.choice(where.payloads)
  chunk = data[offset:offset + _FRAME + length]
  if rng.random() < 0.5:
    data = data[:offset] + data[offset + _FRAME + length:]
    delta = -1
  else:
    data = data[:offset] + chunk + data[offset:]
    delta = 1
  if rng.random() < 0.7:
    count_at, size = where.field("count")
    data = _put(data, count_at, _pack(_uint(data, count_at, size) + delta, size))
  return data


MUTATIONS = {
    "bit_flips": (m_bit_flips, 3), "bytes": (m_bytes, 2), "header_bytes": (m_header_bytes, 2),
    "truncate": (m_truncate, 2), "extend": (m_extend, 1), "version": (m_version, 1),
    "coder": (m_coder, 1), "name": (m_name, 1), "fingerprint": (m_fingerprint, 1),
    "size": (m_size, 3), "count": (m_count, 1), "quality": (m_quality, 1),
    "length": (m_length, 2), "swap": (m_swap, 2), "payload": (m_payload, 4),
    "drop_payload": (m_drop_payload, 1),
}
_NAMES = list(MUTATIONS)
_WEIGHTS = [MUTATIONS[n][1] for n in _NAMES]


def mutate(rng: random.Random, seed: bytes, donors=(), fix: Optional[bool] = None
           ) -> Tuple[bytes, List[str]]:
  """One fuzz input from `seed`; returns it and the names of what was done."""
  data = seed
  done = []
  for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
    name = rng.choices(_NAMES, _WEIGHTS)[0]
    where = layout(data)
    function = MUTATIONS[name][0]
    data = function(rng, data, where, donors) if name == "payload" else function(rng, data, where)
    done.append(name)
  if fix is None:
    fix = rng.random() < 0.5
  if fix:
    data = fix_checksums(data)
    done.append("fixed_checksums")
  return data, done


# Seeds ----------------------------------------------------------------------
def load_codecs(names=None):
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  return {name: tfc_codecs.load(str(MODELS[name])) for name in (names or MODELS)}


def make_seeds(codec, photo, include_corpus: bool = False) -> List[bytes]:
  """Real files of `codec`: a few sizes, every quality or iteration count,
  raw and coded rnn files, and a progressive file cut after a payload."""
  crops = [photo, photo[:24, :40], photo[:1, :1], photo[:17, :65]]
  seeds = []
  if codec.progressive:
    for crop, quality in zip(crops, (8, 3, 1, 16)):
      seeds.append(codec.compress(crop, quality=quality))
      seeds.append(codec.compress(crop, quality=min(quality, 4), raw=True))
    full = seeds[0]
    where = layout(full)
    seeds.append(full[:where.payloads[-1][0]])  # Cut at a payload boundary.
  elif codec.num_qualities:
    for i, crop in enumerate(crops):
      seeds.append(codec.compress(crop, quality=1 + i % codec.num_qualities))
  else:
    seeds = [codec.compress(crop) for crop in crops]
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  stock = tfc_codecs.load(codec.source, ops="stock")  # Stock-coded files (coder 5).
  for i, crop in enumerate(crops[:2]):
    quality = (8, 3)[i] if codec.progressive else (
        1 + i % codec.num_qualities if codec.num_qualities else None)
    seeds.append(stock.compress(crop, quality=quality))
  corpus = CORPUS / codec.codec_name
  if include_corpus and corpus.is_dir():
    seeds += [p.read_bytes() for p in sorted(corpus.glob("*.tfci"))]
  return seeds


def all_seeds(codecs):
  """Codec name -> its seeds, and every codec's seeds (payload donors)."""
  photo = read_photo()
  seeds = {name: make_seeds(codecs[name], photo) for name in sorted(codecs)}
  return seeds, [s for name in sorted(seeds) for s in seeds[name]]


def read_photo():
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  return images.read_image(str(PHOTO))[0]


# The oracle -----------------------------------------------------------------
class Crash(Exception):
  """The oracle failed: an exception other than CodecError, a wrong size, a
  multi-line message, output after an error."""


def declared_size(data: bytes) -> Optional[Tuple[int, int]]:
  from tfc_codecs.errors import CodecError  # pylint: disable=import-outside-toplevel
  try:
    stream = container.parse(data, 1 << 62, allow_truncation=True)
  except CodecError:
    return None
  return stream.height, stream.width


def _check_message(message: str) -> str:
  if not message or "\n" in message or "Traceback" in message:
    raise Crash(f"bad error message {message!r}")
  return message


def check_library(codec, data: bytes, iterations: Optional[int] = None) -> str:
  """`codec.decompress(data)`: an image of the declared size, or a CodecError."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from tfc_codecs.errors import CodecError  # pylint: disable=import-outside-toplevel
  size = declared_size(data)
  if size is not None and size[0] * size[1] > codec.max_pixels:
    # Must be refused by the container, before any decoding.
    try:
      container.parse(data, codec.max_pixels, allow_truncation=codec.progressive)
    except CodecError:
      pass
    else:
      raise Crash(f"{size[0]}x{size[1]} passed the container's pixel limit")
  try:
    image = codec.decompress(data, iterations=iterations)
  except CodecError as e:
    return "error: " + _check_message(str(e))
  except Exception as e:  # pylint: disable=broad-except
    raise Crash(f"library: {type(e).__name__}: {_first_line(e)}") from e
  if size is None:
    raise Crash("decoded a file the container rejects")
  if not (isinstance(image, np.ndarray) and image.dtype == np.uint8
          and image.shape == (size[0], size[1], 3)):
    raise Crash(f"decoded {getattr(image, 'shape', type(image))} for a "
                f"{size[0]}x{size[1]} header")
  return "decoded"


def _first_line(e: BaseException) -> str:
  lines = str(e).strip().splitlines()
  return lines[0][:200] if lines else ""


def check_info(data: bytes) -> str:
  """The library half of `info`: the container with truncation allowed."""
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  from tfc_codecs.errors import CodecError  # pylint: disable=import-outside-toplevel
  try:
    container.parse(data, images.MAX_PIXELS, allow_truncation=True)
  except CodecError as e:
    return "error: " + _check_message(str(e))
  except Exception as e:  # pylint: disable=broad-except
    raise Crash(f"info: {type(e).__name__}: {_first_line(e)}") from e
  return "parsed"


def _run_command(handler, args) -> Tuple[int, str, str]:
  """A CLI command's handler as `cli.main` runs it, in this process."""
  from tfc_codecs.errors import CodecError  # pylint: disable=import-outside-toplevel
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      code = handler(args)
    except CodecError as e:
      print(f"tfc_codecs: error: {e}", file=sys.stderr)
      code = 1
    except Exception as e:  # pylint: disable=broad-except
      raise Crash(f"cli {handler.__name__}: {type(e).__name__}: {_first_line(e)}") from e
  return code, out.getvalue(), err.getvalue()


def _check_cli_error(name: str, code: int, out: str, err: str) -> str:
  lines = err.splitlines()
  if code != 1 or len(lines) != 1 or not lines[0].startswith("tfc_codecs: error: "):
    raise Crash(f"cli {name}: exit {code}, stderr {err[:300]!r}")
  return "error: " + lines[0][len("tfc_codecs: error: "):]


def check_cli(codec, data: bytes, folder: str) -> str:
  """`tfc_codecs decompress --model M` and `tfc_codecs info` on the input."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from tfc_codecs import cli  # pylint: disable=import-outside-toplevel
  source = os.path.join(folder, "input.tfci")
  target = os.path.join(folder, "output.png")
  with open(source, "wb") as f:
    f.write(data)
  if os.path.exists(target):
    os.unlink(target)
  results = []
  # The command line's own parser, so the handlers get every flag's default.
  code, out, err = _run_command(cli.cmd_info, cli.parse_args(["tfc_codecs", "info", source]))
  if code == 0:
    if err or not out.startswith(f"file:         {source}\n"):
      raise Crash(f"cli info: exit 0, stdout {out[:200]!r}, stderr {err[:200]!r}")
    results.append("info ok")
  else:
    results.append(_check_cli_error("info", code, out, err))
  code, out, err = _run_command(cli.cmd_decompress, cli.parse_args(
      ["tfc_codecs", "decompress", source, "--output", target, "--model", codec.source,
       "--workers", "1"]))
  if code == 0:
    size = declared_size(data)
    with Image.open(target) as image:
      if size is None or image.mode != "RGB" or image.size != (size[1], size[0]):
        raise Crash(f"cli decompress wrote a {image.mode} {image.size} PNG for {size}")
    results.append("decompress ok")
  else:
    results.append(_check_cli_error("decompress", code, out, err))
    if os.path.exists(target):
      raise Crash("cli decompress failed but left an output file")
  leftovers = [n for n in os.listdir(folder) if n.startswith(".tmp-")]
  if leftovers:
    raise Crash(f"cli left temporary files {leftovers}")
  return " | ".join(results)


def normalize(message: str) -> str:
  """A message with its numbers and hex digests replaced, to group failures."""
  message = re.sub(r"\b[0-9a-f]{16}\b", "<hex>", message)
  return re.sub(r"\d+", "N", message)


# The fuzz loop --------------------------------------------------------------
def input_for(seed_value: int, codec_name: str, index: int, seeds, donors):
  """Fuzz input number `index` of a codec (deterministic)."""
  rng = random.Random(f"{seed_value}/{codec_name}/{index}")
  seed = rng.choice(seeds)
  data, done = mutate(rng, seed, donors)
  use_cli = rng.random() < 0.1
  iterations = rng.choice((None, None, None, 1, 2, 0, 40)) if codec_name == "rnn" else None
  return data, done, use_cli, iterations


def run_one(codec, data, use_cli, iterations, folder) -> List[str]:
  outcomes = [check_info(data), check_library(codec, data, iterations)]
  if use_cli:
    outcomes.append(check_cli(codec, data, folder))
  return outcomes


def save_corpus(codec_name: str, data: bytes, tag: str) -> Path:
  folder = CORPUS / codec_name
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / f"{tag}-{zlib.adler32(data):08x}.tfci"
  path.write_bytes(data)
  return path


def _rss() -> int:
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
  except OSError:
    return 0


def _cpu_seconds(pid: int) -> float:
  """User + system CPU seconds of a process so far (Linux; 0 if unknown)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
  except OSError:
    return 0.
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker(conn, seed_value, plan, progress):
  """Runs the plan [(codec, start, count)], reporting to the parent through
  `conn` (a summary per batch) and `progress` (index being fuzzed now)."""
  import resource  # pylint: disable=import-outside-toplevel
  codecs = load_codecs()
  seeds, donors = all_seeds(codecs)
  folder = tempfile.mkdtemp(prefix="tfc-fuzz-")
  for position, (name, start, count) in enumerate(plan):
    codec = codecs[name]
    summary = dict(codec=name, start=start, inputs=0, outcomes={}, mutations={},
                   slow=[], max_seconds=0., oracle=[])
    for index in range(start, start + count):
      progress[0], progress[1] = position, index
      data, done, use_cli, iterations = input_for(seed_value, name, index, seeds[name], donors)
      began = time.monotonic()
      try:
        outcomes = run_one(codec, data, use_cli, iterations, folder)
      except Crash as e:
        path = save_corpus(name, data, "oracle")
        summary["oracle"].append(dict(index=index, message=str(e), mutations=done,
                                      file=str(path.relative_to(REPO))))
        outcomes = ["crash: " + str(e)]
      seconds = time.monotonic() - began
      summary["max_seconds"] = max(summary["max_seconds"], seconds)
      if seconds > SOFT_SECONDS:
        summary["slow"].append(dict(index=index, seconds=round(seconds, 1),
                                    size=declared_size(data)))
      summary["inputs"] += 1
      for outcome in outcomes:
        key = normalize(outcome)
        summary["outcomes"][key] = summary["outcomes"].get(key, 0) + 1
      for mutation in done:
        summary["mutations"][mutation] = summary["mutations"].get(mutation, 0) + 1
      if summary["inputs"] % 1000 == 0 or index == start + count - 1:
        summary["max_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        summary["rss"] = _rss()
        conn.send(summary)
        summary = dict(codec=name, start=index + 1, inputs=0, outcomes={},
                       mutations={}, slow=[], max_seconds=0., oracle=[])
  conn.send(None)


def _merge(total, batch):
  for key in ("inputs",):
    total[key] = total.get(key, 0) + batch[key]
  for key in ("outcomes", "mutations"):
    bucket = total.setdefault(key, {})
    for name, count in batch[key].items():
      bucket[name] = bucket.get(name, 0) + count
  total.setdefault("slow", []).extend(batch["slow"])
  total.setdefault("oracle_failures", []).extend(batch["oracle"])
  total["max_seconds_per_input"] = round(max(total.get("max_seconds_per_input", 0.),
                                             batch["max_seconds"]), 3)
  total["max_rss_bytes"] = max(total.get("max_rss_bytes", 0), batch.get("max_rss", 0))
  total["next_index"] = batch["start"] + batch["inputs"]


def main(argv=None) -> int:
  import multiprocessing  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--inputs", type=int, default=100000, help="Inputs per codec.")
  parser.add_argument("--codecs", default=",".join(MODELS))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--batch", type=int, default=5000,
                      help="Inputs per codec before moving to the next codec.")
  parser.add_argument("--minutes", type=float, default=0.,
                      help="Stop (and write results) after this long; 0: no limit.")
  parser.add_argument("--resume", action="store_true",
                      help="Continue the run recorded in --output.")
  parser.add_argument("--output", default=str(RESULTS))
  args = parser.parse_args(argv)
  names = args.codecs.split(",")
  output = Path(args.output)
  report = dict(seed=args.seed, codecs={})
  if args.resume and output.exists():
    report = json.loads(output.read_text())
    args.seed = report["seed"]
  report["command"] = ("nice -n 15 python tests/stress/fuzz_decoder.py --inputs N "
                       "--resume  # continues at each codec's next_index")
  totals = report["codecs"]
  for name in names:
    totals.setdefault(name, dict(inputs=0, next_index=0, crashes=[], hangs=[],
                                 seconds=0.))
  deadline = time.monotonic() + 60 * args.minutes if args.minutes else None
  context = multiprocessing.get_context("spawn")

  def remaining(name):
    return max(0, args.inputs - totals[name]["inputs"])

  def write():
    for total in totals.values():
      total["inputs_per_second"] = round(total["inputs"] / max(total["seconds"], 1e-9), 1)
    report["total_inputs"] = sum(t["inputs"] for t in totals.values())
    output.parent.mkdir(parents=True, exist_ok=True)
    temp = output.with_suffix(".tmp")
    temp.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    os.replace(temp, output)

  while any(remaining(n) for n in names):
    if deadline and time.monotonic() > deadline:
      break
    plan = []
    for name in names:
      if remaining(name):
        plan.append((name, totals[name]["next_index"], min(args.batch, remaining(name))))
    parent_end, child_end = context.Pipe()
    progress = context.Array("q", [-1, -1], lock=False)
    process = context.Process(target=worker, args=(child_end, args.seed, plan, progress),
                              daemon=True)
    process.start()
    last_change, last_seen = time.monotonic(), (-1, -1)
    cpu_at_change = 0.
    batch_start = time.monotonic()
    finished = False
    while True:
      if parent_end.poll(1.):
        try:
          batch = parent_end.recv()
        except EOFError:
          batch = "died"
        if batch is None:
          finished = True
          break
        if batch != "died":
          name = batch["codec"]
          now = time.monotonic()
          totals[name]["seconds"] = round(totals[name]["seconds"] + now - batch_start, 1)
          batch_start = now
          _merge(totals[name], batch)
          write()
          print(f"{name}: {totals[name]['inputs']} inputs, "
                f"{len(totals[name]['oracle_failures'])} oracle failures, "
                f"{len(totals[name]['crashes'])} crashes", flush=True)
          continue
      seen = (progress[0], progress[1])
      cpu = _cpu_seconds(process.pid)
      if seen != last_seen:
        last_seen, last_change, cpu_at_change = seen, time.monotonic(), cpu
      # Stuck: HARD_SECONDS of the worker's own CPU time on one input (or on
      # starting), so a starved worker (nice, a busy machine) is not a hang;
      # or ten times that in wall time (a worker blocked without using CPU).
      stuck = (cpu - cpu_at_change > HARD_SECONDS
               or time.monotonic() - last_change > 10 * HARD_SECONDS)
      if not process.is_alive() or stuck or (deadline and time.monotonic() > deadline):
        break
    if finished:
      process.join()
      continue
    timed_out = deadline and time.monotonic() > deadline and process.is_alive() and not stuck
    if process.is_alive():
      process.kill()
    process.join()
    if timed_out:
      break
    # The worker crashed or hung on input `last_seen`: record it, skip it.
    position, index = last_seen
    if position < 0:
      raise SystemExit(f"fuzz worker died while starting (exit code {process.exitcode})")
    name = plan[position][0]
    seeds, donors = all_seeds(load_codecs())
    data, done, use_cli, iterations = input_for(args.seed, name, index, seeds[name], donors)
    kind = "hangs" if stuck else "crashes"
    path = save_corpus(name, data, kind[:-1])
    totals[name][kind].append(dict(index=index, mutations=done, exit_code=process.exitcode,
                                   file=str(path.relative_to(REPO))))
    totals[name]["inputs"] += 1
    totals[name]["next_index"] = index + 1
    write()
    print(f"{name}: input {index} {kind[:-1]} (exit {process.exitcode}) -> {path}", flush=True)
  write()
  print(json.dumps({n: {k: t.get(k) for k in ("inputs", "inputs_per_second")}
                    for n, t in totals.items()}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
