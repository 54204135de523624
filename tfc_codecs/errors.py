"""The one exception type users see: a clear, one-line message."""


class CodecError(Exception):
  """A user-facing error: bad input, bad file, wrong model, refused write."""
