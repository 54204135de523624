"""Image quality metrics on uint8 RGB images (the field's conventions).

PSNR-RGB: 10·log10(255² / MSE) over all samples. MS-SSIM-RGB: Wang et al.
2003 with the standard five scale weights on the 0..255 range, averaged over
channels; images too small for five scales use as many as fit (weights
renormalized), and None below the 11x11 window.
"""

import atexit
import functools
import math
from typing import Optional

import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11


def psnr(a: np.ndarray, b: np.ndarray) -> float:
  """PSNR in dB between two uint8 images of the same shape (inf if equal)."""
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return math.inf if mse == 0 else 10. * math.log10(255. ** 2 / mse)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> Optional[float]:
  """MS-SSIM of two uint8 [H, W, 3] images, or None if smaller than 11x11."""
  smallest = min(a.shape[:2])
  scales = 0
  while scales < len(MS_SSIM_WEIGHTS) and smallest // 2 ** scales >= SSIM_WINDOW:
    scales += 1
  if scales == 0:
    return None
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return float(_ms_ssim_function(scales)(tf.constant(a, tf.float32),
                                         tf.constant(b, tf.float32)))


@functools.lru_cache(maxsize=None)
def _ms_ssim_function(scales: int):
  """A traced MS-SSIM over `scales` scales (TensorFlow is imported only here,
  so the TF-free metrics stay cheap to import)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  weights = (np.array(MS_SSIM_WEIGHTS[:scales]) / sum(MS_SSIM_WEIGHTS[:scales])).tolist()
  return tf.function(
      lambda a, b: tf.image.ssim_multiscale(a, b, 255., power_factors=weights,
                                            filter_size=SSIM_WINDOW),
      reduce_retracing=True)


# Drop the traced functions while TensorFlow is still alive at exit.
atexit.register(_ms_ssim_function.cache_clear)


def ms_ssim_db(value: float) -> float:
  """MS-SSIM on the dB scale the field plots: -10·log10(1 - x)."""
  return math.inf if value >= 1 else -10. * math.log10(1. - value)


def bits_per_pixel(num_bytes: int, height: int, width: int) -> float:
  return 8. * num_bytes / (height * width)
