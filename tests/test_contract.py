"""The codec contract (tfc_codecs/contract.py): each rate kind's loaded codec
keeps it, a cut progressive file is the K-iteration file, and the Keras-level
codecs declare what saving needs."""

import numpy as np
import pytest

import tfc_codecs
from tfc_codecs import container, model_dir
from tfc_codecs.codecs.base import PaddedCodec
from tfc_codecs.codecs.rnn import RnnCodec
from tfc_codecs.contract import LoadedCodec, RateKind, cut_progressive
from tfc_codecs.errors import CodecError

from conftest import MODELS

KINDS = {"hyperprior_tiny": RateKind.SINGLE, "hyperprior_vr_tiny": RateKind.VARIABLE,
         "rnn_tiny": RateKind.PROGRESSIVE}


def test_rate_kind_of_qualities_and_progressive():
  assert RateKind.of(0, False) is RateKind.SINGLE
  assert RateKind.of(7, False) is RateKind.VARIABLE
  assert RateKind.of(16, True) is RateKind.PROGRESSIVE
  assert [k.takes_quality for k in RateKind] == [False, True, True]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_loaded_codecs_keep_the_contract(name, photo):
  codec = tfc_codecs.load(str(MODELS / name))
  assert isinstance(codec, LoadedCodec)
  assert codec.rate_kind is KINDS[name]
  assert (codec.num_qualities > 0) == codec.rate_kind.takes_quality
  data = codec.compress(photo)
  assert container.parse(data, codec.max_pixels).quality == codec.default_quality
  if codec.rate_kind.takes_quality:
    assert 1 <= codec.default_quality <= codec.num_qualities
    assert data == codec.compress(photo, codec.default_quality)
    assert data != codec.compress(photo, 1 if codec.default_quality > 1 else 2)
  else:
    assert codec.default_quality == (codec.quality or 0)


def test_cut_progressive_file_is_the_k_iteration_file(photo):
  codec = tfc_codecs.load(str(MODELS / "rnn_tiny"))
  full = container.parse(codec.compress(photo, 3), codec.max_pixels)
  for k in (1, 2):
    cut = cut_progressive(full, k)
    assert container.serialize(cut) == codec.compress(photo, k)
    np.testing.assert_array_equal(codec.decompress(container.serialize(full), iterations=k),
                                  codec.decompress(container.serialize(cut)))
  assert cut_progressive(full, 3) is full and cut_progressive(full, 9) is full
  with pytest.raises(CodecError, match="at least 1"):
    cut_progressive(full, 0)


def test_keras_codecs_declare_their_coder_and_padding(tmp_path):
  """Every codec has `coder` (None until frozen), which `model_dir.save`
  checks; only the single-rate transform codecs use the padded template."""
  net = RnnCodec(width=0.0625, bits=4, max_iterations=2, train_iterations=1)
  assert net.coder is None and not isinstance(net, PaddedCodec)
  with pytest.raises(CodecError, match="frozen"):
    model_dir.save(net, str(tmp_path / "unfrozen"), {})
  net.freeze()
  assert net.coder is not None
  model_dir.save(net, str(tmp_path / "frozen"), {})
  reloaded, _ = model_dir.load(str(tmp_path / "frozen"))
  assert reloaded.coder is not None
  hyperprior = tfc_codecs.load(str(MODELS / "hyperprior_tiny")).net
  assert isinstance(hyperprior, PaddedCodec) and hyperprior.coder is not None
