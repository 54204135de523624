"""Bjøntegaard delta rate and delta PSNR (VCEG-M33, 2001).

Each curve is interpolated with a monotone piecewise cubic (PCHIP), log-rate
against quality (for BD-rate) or quality against log-rate (for BD-PSNR), and
the interpolants are integrated over the overlapping range: unlike the
original cubic polynomial fit, PCHIP passes through every point and never
overshoots between them (as in JVET's and CompressAI's BD tools).
"""

from typing import Sequence, Tuple

import numpy as np
from scipy.interpolate import PchipInterpolator

from tfc_codecs.errors import CodecError


def _fit_integral(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
  """Mean over [low, high] of the PCHIP interpolant of y(x) (points sorted by
  x; y averaged over repeated x)."""
  unique_x, inverse = np.unique(x, return_inverse=True)
  mean_y = np.bincount(inverse, weights=y) / np.bincount(inverse)
  if len(unique_x) < 2:
    raise CodecError("a BD curve needs at least 2 distinct points")
  return float(PchipInterpolator(unique_x, mean_y).integrate(low, high) / (high - low))


def _check(rate: Sequence[float], quality: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
  rate, quality = np.asarray(rate, float), np.asarray(quality, float)
  if len(rate) != len(quality) or len(rate) < 2:
    raise CodecError("a BD curve needs at least 2 (rate, quality) points")
  if np.any(rate <= 0) or not np.all(np.isfinite(quality)):
    raise CodecError("BD curves need positive rates and finite qualities")
  return np.log(rate), quality


def bd_scale(metric: str, values: Sequence[float]) -> np.ndarray:
  """A metric's values on the scale BD integrates over: MS-SSIM as
  −10·log10(1 − MS-SSIM) dB (raw MS-SSIM saturates near 1, where a cubic or
  PCHIP in it is badly conditioned); PSNR as is."""
  values = np.asarray(values, float)
  if metric.startswith("ms-ssim"):
    return -10. * np.log10(np.maximum(1. - values, 1e-12))
  return values


def overlap(ref_quality: Sequence[float], test_quality: Sequence[float]) -> Tuple[float, float]:
  """The quality range both curves cover, over which BD-rate averages."""
  return _overlap(np.asarray(ref_quality, float), np.asarray(test_quality, float))


def _overlap(a: np.ndarray, b: np.ndarray) -> Tuple[float, float]:
  low, high = max(a.min(), b.min()), min(a.max(), b.max())
  if low >= high:
    raise CodecError("the two curves do not overlap")
  return low, high


def bd_rate(ref_rate, ref_quality, test_rate, test_quality) -> float:
  """Average rate difference of test vs reference at equal quality, in %."""
  ref_log, ref_q = _check(ref_rate, ref_quality)
  test_log, test_q = _check(test_rate, test_quality)
  low, high = _overlap(ref_q, test_q)
  diff = (_fit_integral(test_q, test_log, low, high)
          - _fit_integral(ref_q, ref_log, low, high))
  return float((np.exp(diff) - 1.) * 100.)


def bd_quality(ref_rate, ref_quality, test_rate, test_quality) -> float:
  """Average quality difference (e.g. dB) of test vs reference at equal rate."""
  ref_log, ref_q = _check(ref_rate, ref_quality)
  test_log, test_q = _check(test_rate, test_quality)
  low, high = _overlap(ref_log, test_log)
  return float(_fit_integral(test_log, test_q, low, high)
               - _fit_integral(ref_log, ref_q, low, high))
