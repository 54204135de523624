"""Codec options that `tfc_codecs train` offers as flags.

Each codec class declares the options it takes itself (`Codec.model_options`,
`Codec.training_options`; a codec has its bases' too). The CLI makes one
`--<name>` flag per option any registered codec declares, and
`training.train` hands the values to the codec: model options as constructor
keywords (what the model is: fixed for a run, stored in model.json), training
options as attributes of the model being trained (how it trains: they may
change when a run resumes; their class attribute is the default).
"""

import argparse
import dataclasses
from typing import Any, Callable, List, Tuple


def _list_of(kind: Callable[[str], Any], name: str) -> Callable[[str], List[Any]]:
  """A flag type: comma-separated values of `kind`."""

  def parse(text: str) -> List[Any]:
    try:
      return [kind(v) for v in text.split(",")]
    except ValueError:
      raise argparse.ArgumentTypeError(f"must be comma-separated {name}, not {text!r}") from None

  return parse


int_list = _list_of(int, "integers")
float_list = _list_of(float, "numbers")


@dataclasses.dataclass(frozen=True)
class Option:
  """One option: the constructor keyword or attribute `name`, set by `--name`."""
  name: str
  help: str
  type: Callable[[str], Any] = str  # Parses the flag's text.
  choices: Tuple[str, ...] = ()  # The allowed values, if only some are.
