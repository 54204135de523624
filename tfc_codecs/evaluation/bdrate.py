"""Bjøntegaard delta rate and delta PSNR (VCEG-M33, 2001).

Each curve is fit with a polynomial (cubic when it has four or more points)
of log-rate against quality (for BD-rate) or quality against log-rate (for
BD-PSNR); the fits are integrated over the overlapping range.
"""

from typing import Sequence, Tuple

import numpy as np

from tfc_codecs.errors import CodecError


def _fit_integral(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
  degree = min(3, len(x) - 1)
  poly = np.polyint(np.polyfit(x, y, degree))
  return (np.polyval(poly, high) - np.polyval(poly, low)) / (high - low)


def _check(rate: Sequence[float], quality: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
  rate, quality = np.asarray(rate, float), np.asarray(quality, float)
  if len(rate) != len(quality) or len(rate) < 2:
    raise CodecError("a BD curve needs at least 2 (rate, quality) points")
  if np.any(rate <= 0) or not np.all(np.isfinite(quality)):
    raise CodecError("BD curves need positive rates and finite qualities")
  return np.log(rate), quality


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
