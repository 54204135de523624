"""The compute precision of the convolutions of the models being built.

Training may build a model inside `conv_dtype("bfloat16")`: its convolutions
then compute in bfloat16 while weights, nonlinearities (GDN, LSTM gates),
entropy models and every layer's output stay float32. On CPUs with AMX-BF16
this speeds up training steps (experiments/training_step.py). Models that code
are always built in float32, so coding never depends on it.
"""

import contextlib
from typing import Iterator, Optional

import tensorflow as tf

CONV_DTYPES = ("float32", "bfloat16")
_conv_dtype = "float32"  # Of the models being built; set by conv_dtype().


@contextlib.contextmanager
def conv_dtype(dtype: str) -> Iterator[None]:
  """Convolutions of models built inside compute in `dtype`."""
  global _conv_dtype  # pylint: disable=global-statement
  if dtype not in CONV_DTYPES:
    raise ValueError(f"conv_dtype must be one of {CONV_DTYPES}, not {dtype!r}")
  previous, _conv_dtype = _conv_dtype, dtype
  try:
    yield
  finally:
    _conv_dtype = previous


def conv_policy() -> Optional[str]:
  """The Keras dtype policy for a convolution built now (None: the default)."""
  return "mixed_bfloat16" if _conv_dtype == "bfloat16" else None


class Conv2D(tf.keras.layers.Conv2D):
  """Keras' Conv2D in the precision of `conv_dtype`, with a float32 output."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, dtype=conv_policy(), **kwargs)

  def call(self, inputs):
    return tf.cast(super().call(inputs), tf.float32)
