"""The entropy-decoded latents of a `.tfci` file, which `tfc_codecs.contract`
requires to be bit-identical on every machine: every array of symbols the
file's entropy decoders return, with the table indexes each was decoded with.

Recorded at the entropy coder (`decode` / `decode_chunks` of the range or
stock coder), below every codec, so it means the same for all of them. Used by
test_determinism.py (also in its subprocesses) and test_golden.py.
"""

import hashlib
from typing import List

import numpy as np
import tensorflow as tf

from tfc_codecs import container

DECODING_METHODS = ("decode", "decode_chunks")


def entropy_decoded(codec, data: bytes) -> List[np.ndarray]:
  """The arrays the entropy decoders read from `data` (and the index arrays
  they read them with), in decoding order. `codec` is a `tfc_codecs.load`
  result whose `ops` is the file's coder; the file is decoded eagerly, its
  model exposed (`codec.net`)."""
  stream = codec.parse(data)
  assert stream.coder != container.CODER_RAW, "a raw file holds its bits uncoded"
  assert container.OPS_OF_CODER[stream.coder] == codec.ops, "load the file's coder"
  net = codec.net
  coders = {id(c): c for c in (getattr(part, "entropy_coder", part) for part in
                               (net.coder, getattr(net, "side_coder", None))) if c is not None}
  record: List[np.ndarray] = []

  def recording(method):
    def decode(string, *args, **kwargs):
      values = method(string, *args, **kwargs)
      record.extend(np.asarray(a) for a in args if isinstance(a, tf.Tensor))
      record.append(values.numpy())
      return values
    return decode

  eagerly = tf.config.functions_run_eagerly()
  try:
    for coder in coders.values():
      for name in DECODING_METHODS:
        setattr(coder, name, recording(getattr(coder, name)))
    tf.config.run_functions_eagerly(True)
    codec.decompress(data)
  finally:
    tf.config.run_functions_eagerly(eagerly)
    for coder in coders.values():
      for name in DECODING_METHODS:
        if name in vars(coder):
          delattr(coder, name)
  assert record, f"no entropy decoder of {codec.codec_name} ran"
  return record


def latents_sha256(latents: List[np.ndarray]) -> str:
  """A digest of `entropy_decoded` arrays: their dtypes, shapes and values."""
  digest = hashlib.sha256()
  for array in latents:
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()
