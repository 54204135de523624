"""The one exception type users see: a clear, one-line message."""

import re


class CodecError(Exception):
  """A user-facing error: bad input, bad file, wrong model, refused write."""


def op_error_message(message: str) -> str:
  """The informative line of a TensorFlow op error's message: an assertion's
  own text, else the first line that is not graph-execution boilerplate."""
  for line in message.splitlines():
    if line.startswith("assertion failed: ["):
      return line[len("assertion failed: ["):].split("]", 1)[0]
  for line in message.splitlines():
    line = re.sub(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]", "", line).strip()
    if line and not line.startswith(("Graph execution error", "Detected at node",
                                     "<stack traces", "[[")):
      return line
  return message.strip()
