"""tfc_codecs: learned image codecs on tensorflow-compression.

    import tfc_codecs
    codec = tfc_codecs.load("hyperprior")        # or a trained model directory
    data = codec.compress(image)                 # uint8 [H, W, 3] -> .tfci bytes
    image = codec.decompress(data)
"""

__version__ = "0.4.0"


def load(name_or_path=None, quality=None, ops="tfc", max_pixels=None):
  """Loads a shipped model or a trained model directory; see `api.load`
  (ops="stock": compress with the stock-op entropy coder; max_pixels: the
  largest image, default `images.MAX_PIXELS`)."""
  from tfc_codecs import api, images  # pylint: disable=import-outside-toplevel
  return api.load(name_or_path, quality, ops, max_pixels or images.MAX_PIXELS)
