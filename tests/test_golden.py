"""Golden `.tfci` files: a format or coding change cannot slip in unnoticed.

testdata/golden/ holds, for every codec x entropy coder (and the rnn's raw
bits), the file its tiny test model (testdata/models/) makes of
testdata/golden/input.png, its decoded image (`<codec>.decoded.png`, one for
both coders, which carry the same latents) and, in expected.json, the SHA-256
of each file and of its entropy-decoded latents (tests/latents.py). As
`tfc_codecs.contract` states, files and latents must match exactly on every
machine, and decoded pixels within ±PIXEL_TOLERANCE_ACROSS_KERNELS (they come
from float transforms, which kernel libraries compute a little differently);
compressing the input again must give the same bytes.

The files change only on purpose, with the change that makes them differ:

    TFC_CODECS_GENERATE_GOLDEN=1 pytest tests/test_golden.py
"""

import hashlib
import json
import os
from typing import Any, Dict, NamedTuple, Optional

import numpy as np
import pytest

from conftest import MODELS, REPO
from latents import entropy_decoded, latents_sha256

GOLDEN = REPO / "testdata" / "golden"
INPUT = GOLDEN / "input.png"
EXPECTED = GOLDEN / "expected.json"
GENERATE = os.environ.get("TFC_CODECS_GENERATE_GOLDEN") == "1"


class Case(NamedTuple):
  model: str  # Directory under testdata/models/.
  ops: str  # Entropy coder of compress: "tfc" (coder 3) or "stock" (coder 5).
  quality: Optional[int] = None
  raw: bool = False  # The rnn's raw bits (coder 2).


_MODELS = {"channelwise": ("channelwise_tiny", None), "channelwise-vr": ("channelwise_vr_tiny", 2),
           "factorized": ("factorized_tiny", None), "factorized-vr": ("factorized_vr_tiny", 2),
           "hyperprior": ("hyperprior_tiny", None), "hyperprior-vr": ("hyperprior_vr_tiny", 2),
           "rnn": ("rnn_tiny", 3)}
CASES = {f"{codec}-{ops}": Case(model, ops, quality)
         for codec, (model, quality) in _MODELS.items() for ops in ("tfc", "stock")}
CASES["rnn-raw"] = Case("rnn_tiny", "tfc", 2, raw=True)
# The fast tier checks the three fixed-rate codecs with TFC's coder (models the
# other tests load too); the slow tier every case.
FAST = {"channelwise-tfc", "factorized-tfc", "hyperprior-tfc"}


def sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def decoded_png(name: str):
  """The stored decoded image of case `name` (shared by both coders)."""
  return GOLDEN / f"{name.replace('-tfc', '').replace('-stock', '')}.decoded.png"


def read_decoded(name: str) -> np.ndarray:
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  image, notes = images.read_image(str(decoded_png(name)))
  assert not notes
  return image


def load(case: Case):
  import tfc_codecs  # pylint: disable=import-outside-toplevel
  return tfc_codecs.load(str(MODELS / case.model), ops=case.ops)


def compress(case: Case) -> bytes:
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  image, notes = images.read_image(str(INPUT))
  assert not notes
  return load(case).compress(image, quality=case.quality, raw=case.raw)


def generate() -> None:
  """Writes every case's file, decoded image and expected.json (the input
  image is kept)."""
  from tfc_codecs import images  # pylint: disable=import-outside-toplevel
  if not INPUT.exists():  # An odd size: padding and cropping are covered.
    photo, _ = images.read_image(str(REPO / "testdata" / "images" / "bsds_crop_0.png"))
    INPUT.write_bytes(images.encode_png(photo[:40, :56]))
  expected = {}
  for name, case in sorted(CASES.items()):
    data = compress(case)
    (GOLDEN / f"{name}.tfci").write_bytes(data)
    codec = load(case)
    decoded_png(name).write_bytes(images.encode_png(codec.decompress(data)))
    expected[name] = dict(case._asdict(), file_sha256=sha256(data), latents_sha256=(
        None if case.raw else latents_sha256(entropy_decoded(codec, data))))
  EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")


@pytest.fixture(scope="module")
def expected() -> Dict[str, Dict[str, Any]]:
  if GENERATE:
    generate()
  return json.loads(EXPECTED.read_text())


def _params():
  return [pytest.param(name, marks=() if name in FAST else pytest.mark.slow)
          for name in sorted(CASES)]


def test_golden_set_is_complete(expected):
  assert set(expected) == set(CASES)
  assert {p.stem for p in GOLDEN.glob("*.tfci")} == set(CASES)
  assert ({p.name for p in GOLDEN.glob("*.decoded.png")}
          == {decoded_png(name).name for name in CASES})
  for name, case in CASES.items():
    assert {k: expected[name][k] for k in case._fields} == case._asdict()


def test_both_coders_carry_the_same_latents(expected):
  """A model's range-coded and stock-coded files hold the same latents (so
  they decode to the same image, stored once)."""
  for codec in _MODELS:
    assert (expected[f"{codec}-tfc"]["latents_sha256"]
            == expected[f"{codec}-stock"]["latents_sha256"]), codec


@pytest.mark.parametrize("name", _params())
def test_golden_file_decodes_to_expected_latents_and_pixels(name, expected):
  """The file is the stored one, its entropy decoders read the stored latents,
  and its pixels are the stored image's within the tolerance."""
  from tfc_codecs import contract  # pylint: disable=import-outside-toplevel
  data = (GOLDEN / f"{name}.tfci").read_bytes()
  assert sha256(data) == expected[name]["file_sha256"]
  codec = load(CASES[name])
  decoded, reference = codec.decompress(data), read_decoded(name)
  assert decoded.dtype == np.uint8
  difference = contract.max_pixel_difference(decoded, reference)
  assert difference <= contract.PIXEL_TOLERANCE_ACROSS_KERNELS, (
      f"decoded samples differ by up to {difference} from the golden image")
  if not CASES[name].raw:
    assert latents_sha256(entropy_decoded(codec, data)) == expected[name]["latents_sha256"]


@pytest.mark.parametrize("name", _params())
def test_compressing_again_gives_the_golden_bytes(name):
  assert compress(CASES[name]) == (GOLDEN / f"{name}.tfci").read_bytes()
