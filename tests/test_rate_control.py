"""--target_bpp / --target_psnr pick the same quality as trying every one."""

import os

import numpy as np
import pytest

import tfc_codecs
from tfc_codecs import container, rate_control
from tfc_codecs.errors import CodecError
from tfc_codecs.evaluation import metrics

from conftest import tiered

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {name: os.path.join(ROOT, "testdata", "models", name)
          for name in ("hyperprior_vr_tiny", "channelwise_vr_tiny", "rnn_tiny")}


@pytest.fixture(scope="module", params=tiered(sorted(MODELS)))
def every_quality(request, photo):
  """(model path, {quality: (bpp, psnr, file bytes)}) by brute force."""
  codec = tfc_codecs.load(MODELS[request.param])
  table = {}
  for quality in range(1, codec.num_qualities + 1):
    data = codec.compress(photo, quality)
    table[quality] = (metrics.bits_per_pixel(len(data), *photo.shape[:2]),
                      metrics.psnr(photo, codec.decompress(data)), data)
  return MODELS[request.param], table


def test_target_bpp_picks_the_largest_quality_that_fits(every_quality, photo):
  model, table = every_quality
  bpps = sorted(bpp for bpp, _, _ in table.values())
  targets = [bpps[0], (bpps[0] + bpps[-1]) / 2, bpps[-1] * 2] + [
      (a + b) / 2 for a, b in zip(bpps, bpps[1:])][::3]
  for target in targets:
    choice = rate_control.compress_to_target(model, photo, target_bpp=target)
    expected = max(q for q, (bpp, _, _) in table.items() if bpp <= target)
    assert choice.quality == expected, (target, table)
    assert choice.data == table[expected][2]  # A cut rnn file equals a direct one.
    assert container.parse(choice.data, 1 << 20).quality == expected


def test_target_psnr_picks_the_lowest_quality_that_reaches_it(every_quality, photo):
  model, table = every_quality
  psnrs = sorted(psnr for _, psnr, _ in table.values())
  for target in (psnrs[0], (psnrs[0] + psnrs[-1]) / 2, psnrs[-1]):
    choice = rate_control.compress_to_target(model, photo, target_psnr=target)
    reaching = [q for q, (_, psnr, _) in table.items() if psnr >= target]
    assert choice.quality == min(reaching), target
    assert choice.data == table[choice.quality][2]
    assert choice.psnr >= target


def test_unreachable_targets_are_clear_errors(every_quality, photo):
  model, table = every_quality
  lowest = min(bpp for bpp, _, _ in table.values())
  with pytest.raises(CodecError, match="no quality fits"):
    rate_control.compress_to_target(model, photo, target_bpp=lowest * 0.9)
  with pytest.raises(CodecError, match="no quality reaches"):
    rate_control.compress_to_target(model, photo, target_psnr=99.)
  for kwargs in ({}, dict(target_bpp=1., target_psnr=30.), dict(target_bpp=0.)):
    with pytest.raises(CodecError):
      rate_control.compress_to_target(model, photo, **kwargs)


def test_max_pixels_applies_to_every_quality_tried(every_quality, photo):
  model, table = every_quality
  limit = photo.shape[0] * photo.shape[1]
  with pytest.raises(CodecError, match=f"limit of {limit - 1} pixels"):
    rate_control.compress_to_target(model, photo, target_bpp=100., max_pixels=limit - 1)
  choice = rate_control.compress_to_target(model, photo, target_bpp=100., max_pixels=limit)
  assert choice.data == table[max(table)][2]
