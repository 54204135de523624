"""tfc_codecs: learned image codecs on tensorflow-compression.

    import tfc_codecs
    codec = tfc_codecs.load("hyperprior")        # or a trained model directory
    data = codec.compress(image)                 # uint8 [H, W, 3] -> .tfci bytes
    image = codec.decompress(data)
    data = tfc_codecs.compress(image)            # the default model, default quality
    image = tfc_codecs.decompress(data)          # whichever shipped model made it

The plain install runs the shipped models without tensorflow-compression (see
`tfc_stack`); the `[train]` extra adds it.
"""

__version__ = "0.5.0"


def load(name_or_path=None, quality=None, ops=None, max_pixels=None):
  """Loads a shipped model, a trained model directory or an export; see
  `api.load` (ops: "tfc" or "stock", default "tfc" where tensorflow-compression
  is installed, else "stock"; max_pixels: the largest image, default
  `images.MAX_PIXELS`)."""
  from tfc_codecs import api, images  # pylint: disable=import-outside-toplevel
  return api.load(name_or_path, quality, ops, max_pixels or images.MAX_PIXELS)


def compress(image, model=None, quality=None, ops=None):
  """uint8 [H, W, 3] image (or gray/alpha/16-bit) -> `.tfci` bytes, with a
  shipped model (default: the default one) or a model directory."""
  return load(model, quality, ops).compress(image, quality)


def decompress(data, model=None):
  """`.tfci` bytes -> uint8 [H, W, 3], with the shipped model that made them
  (or `model`, a model directory or export)."""
  from tfc_codecs import api  # pylint: disable=import-outside-toplevel
  return api.load_for(data, model).decompress(data)
