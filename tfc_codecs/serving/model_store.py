"""Served models: SavedModel versions loaded from TF Serving base paths, kept
up to date by polling, and run on tensors for the REST and gRPC front ends.

A model's base path holds `<version>/saved_model.pb` (positive integer
versions). Every version is loaded (or those a config's
`model_version_policy` selects); a version that fails to load, e.g. one still
being written, is retried once its files change. Request errors are
`ServingError`s carrying TF Serving's status code.
"""

import dataclasses
import os
import sys
import threading
from typing import Callable, Dict, List, Optional

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow.python.saved_model import loader_impl
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

from tfc_codecs import exported_codec, tfc_stack
from tfc_codecs.errors import CodecError, op_error_message

DEFAULT_SIGNATURE = "serving_default"
_VersionPolicy = (file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig
                  .ServableVersionPolicy)


class ServingError(Exception):
  """A failed request; `code` is a status code name such as "NOT_FOUND"."""

  def __init__(self, code: str, message: str):
    super().__init__(message)
    self.code = code


def log(message: str) -> None:
  print(f"tfc_codecs serve: {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class ModelConfig:
  """One served model: TF Serving's ModelConfig fields that apply here."""
  name: str
  base_path: str
  version_policy: Optional[_VersionPolicy] = None  # None: every version.
  labels: Dict[str, int] = dataclasses.field(default_factory=dict)


def read_config_file(path: str) -> List[ModelConfig]:
  """Parses tensorflow_model_server's --model_config_file (text ModelServerConfig)."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    raise CodecError(f"cannot read {path}: {e.strerror}") from None
  try:
    config = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
  except text_format.ParseError as e:
    raise CodecError(f"{path}: {e}") from None
  if config.WhichOneof("config") != "model_config_list":
    raise CodecError(f"{path}: expected a model_config_list")
  models = []
  for entry in config.model_config_list.config:
    if not entry.name or not entry.base_path:
      raise CodecError(f"{path}: every config needs a name and a base_path")
    if entry.model_platform not in ("", "tensorflow"):
      raise CodecError(f"{path}: model {entry.name}: unsupported model_platform "
                       f"{entry.model_platform!r} (only tensorflow)")
    if any(m.name == entry.name for m in models):
      raise CodecError(f"{path}: model {entry.name} is configured twice")
    models.append(ModelConfig(
        entry.name, os.path.abspath(entry.base_path),
        entry.model_version_policy if entry.HasField("model_version_policy") else None,
        dict(entry.version_labels)))
  if not models:
    raise CodecError(f"{path}: no models configured")
  return models


class Version:
  """One loaded version of a model: its signature functions and SignatureDefs."""

  def __init__(self, number: int, path: str,
               runs: Optional[threading.BoundedSemaphore] = None):
    self.number = number
    self.path = path
    self._runs = runs or threading.BoundedSemaphore(1)
    meta_graphs = [m for m in loader_impl.parse_saved_model(path).meta_graphs
                   if set(m.meta_info_def.tags) == {"serve"}]
    if not meta_graphs:
      raise ValueError("no MetaGraphDef tagged serve")
    if exported_codec.export_ops(path) == "tfc":
      tfc_stack.require(f"serving {path} (an export made with --ops tfc)")
      import tensorflow_compression  # pylint: disable=import-outside-toplevel,unused-import
    self.signature_defs = get_model_metadata_pb2.SignatureDefMap()
    for name, signature_def in meta_graphs[0].signature_def.items():
      self.signature_defs.signature_def[name].CopyFrom(signature_def)
    self.module = tf.saved_model.load(path, tags=["serve"])

  def signature(self, name: str):
    """The concrete function of signature `name` ("" means serving_default)."""
    try:
      return self.module.signatures[name or DEFAULT_SIGNATURE]
    except KeyError:
      raise ServingError("FAILED_PRECONDITION",
                         f'Serving signature key "{name}" not found.') from None

  def input_specs(self, signature_name: str) -> Dict[str, tf.TensorSpec]:
    return self.signature(signature_name).structured_input_signature[1]

  def predict(self, signature_name: str, inputs: Dict[str, object],
              convert: Callable[[str, tf.TensorSpec, object], tf.Tensor],
              output_filter=()) -> Dict[str, np.ndarray]:
    """Runs a signature; `convert(name, spec, value)` makes each input a tensor.
    An input the request leaves out takes its SignatureDef default, if it has
    one (as TF Serving's Predict does).

    Returns the outputs (those in `output_filter`, if given) by name, sorted.
    """
    function = self.signature(signature_name)
    specs = function.structured_input_signature[1]
    defaults = self.signature_defs.signature_def[signature_name or DEFAULT_SIGNATURE].defaults
    extra = sorted(set(inputs) - set(specs))
    missing = sorted(set(specs) - set(inputs) - set(defaults))
    if extra or missing:
      raise ServingError(
          "INVALID_ARGUMENT", f"input size does not match signature: "
          f"{len(inputs)}!={len(specs)} len({{{','.join(sorted(inputs))}}}) != "
          f"len({{{','.join(sorted(specs))}}}). Sent extra: {{{','.join(extra)}}}. "
          f"Missing but required: {{{','.join(missing)}}}.")
    unknown = sorted(set(output_filter) - set(function.structured_outputs))
    if unknown:
      raise ServingError("INVALID_ARGUMENT", f"output tensor alias not found in "
                         f"signature: {unknown[0]} Outputs expected to be in the set "
                         f"{{{','.join(sorted(function.structured_outputs))}}}.")
    tensors = {}
    for name, spec in specs.items():
      if name not in inputs:
        tensors[name] = tf.constant(tf.make_ndarray(defaults[name]), spec.dtype)
        continue
      tensor = convert(name, spec, inputs[name])
      if tensor.dtype != spec.dtype:
        raise ServingError("INVALID_ARGUMENT", f"input {name}: expects {spec.dtype.name} "
                           f"but {tensor.dtype.name} is provided")
      if not spec.shape.is_compatible_with(tensor.shape):
        raise ServingError("INVALID_ARGUMENT", f"input {name}: shape "
                           f"{tensor.shape.as_list()} does not match the signature's "
                           f"{_shape_text(spec.shape)}")
      tensors[name] = tensor
    try:
      with self._runs:  # Requests beyond the limit wait here, holding no tensors.
        outputs = function(**tensors)
    except tf.errors.OpError as e:
      raise ServingError(error_codes_pb2.Code.Name(e.error_code),
                         op_error_message(e.message)) from None
    return {name: outputs[name].numpy() for name in sorted(outputs)
            if not output_filter or name in output_filter}


def _shape_text(shape: tf.TensorShape) -> str:
  if shape.rank is None:
    return "[?]"
  return "[" + ", ".join("?" if d is None else str(d) for d in shape.as_list()) + "]"


def _versions_on_disk(base_path: str) -> Dict[int, str]:
  """Version number -> directory, for version directories with a saved_model.pb."""
  try:
    names = os.listdir(base_path)
  except OSError:
    return {}
  return {int(n): os.path.join(base_path, n) for n in names
          if n.isascii() and n.isdigit() and int(n) > 0
          and os.path.isfile(os.path.join(base_path, n, "saved_model.pb"))}


def _files_state(path: str) -> tuple:
  """Names, sizes and modification times of the files under `path`."""
  state = []
  for root, _, files in os.walk(path):
    for name in files:
      try:
        stat = os.stat(os.path.join(root, name))
      except OSError:
        continue
      state.append((os.path.join(root, name), stat.st_size, stat.st_mtime_ns))
  return tuple(sorted(state))


def select_versions(policy, numbers) -> set:
  """The versions a ServableVersionPolicy keeps (None: all of them)."""
  kind = policy.WhichOneof("policy_choice") if policy is not None else None
  if kind == "latest":
    return set(sorted(numbers)[-max(policy.latest.num_versions, 1):])
  if kind == "specific":
    return set(numbers) & set(policy.specific.versions)
  return set(numbers)


class ModelStore:
  """Loaded versions of every configured model, polled for changes."""

  def __init__(self, configs: List[ModelConfig], poll_seconds: float,
               max_concurrent_runs: int = 2):
    """`max_concurrent_runs` bounds the signature calls running at once over all
    models (the rest queue): each call uses every core and holds its own
    activations, so more of them add memory and latency, not throughput."""
    if max_concurrent_runs < 1:
      raise CodecError("--max_concurrent_runs must be at least 1")
    self._runs = threading.BoundedSemaphore(max_concurrent_runs)
    for config in configs:
      if not os.path.isdir(config.base_path):
        raise CodecError(f"model {config.name}: base path {config.base_path} "
                         "is not a directory")
    self._configs = {c.name: c for c in configs}
    self._versions: Dict[str, Dict[int, Version]] = {c.name: {} for c in configs}
    self._failed: Dict[str, tuple] = {}  # Version directory -> its files when it failed.
    self._poll_seconds = poll_seconds
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._poll_forever, name="model-poller",
                                    daemon=True)

  def start(self) -> None:
    """Loads what is there now, then (poll_seconds > 0) polls in the background."""
    self.poll()
    if self._poll_seconds > 0:
      self._thread.start()

  def stop(self) -> None:
    self._stop.set()
    if self._thread.is_alive():
      self._thread.join()

  def _poll_forever(self) -> None:
    while not self._stop.wait(self._poll_seconds):
      try:
        self.poll()
      except Exception as e:  # pylint: disable=broad-except  # Keep polling.
        log(f"polling failed: {e}")

  def poll(self) -> None:
    """Loads new versions and unloads those gone or no longer selected."""
    for config in self._configs.values():
      on_disk = _versions_on_disk(config.base_path)
      states = {n: _files_state(p) for n, p in on_disk.items()}
      versions = dict(self._versions[config.name])
      while True:
        loadable = [n for n in on_disk
                    if n in versions or self._failed.get(on_disk[n]) != states[n]]
        wanted = select_versions(config.version_policy, loadable)
        missing = sorted(wanted - set(versions))
        if not missing:
          break
        for number in missing:
          path = on_disk[number]
          try:
            versions[number] = Version(number, path, self._runs)
            self._failed.pop(path, None)
            log(f"loaded model {config.name} version {number} from {path}")
          except Exception as e:  # pylint: disable=broad-except  # Retried when it changes.
            self._failed[path] = states[number]
            message = str(e).strip().splitlines()
            log(f"cannot load model {config.name} version {number} from {path} "
                f"({type(e).__name__}: {message[0] if message else ''}); "
                "retrying when its files change")
      for number in sorted(set(versions) - wanted):
        del versions[number]
        log(f"unloaded model {config.name} version {number}")
      self._versions[config.name] = versions  # Replaced whole: readers need no lock.

  def _number(self, name: str, version: Optional[int], label: Optional[str]) -> Optional[int]:
    """The version a request names (by number or label); None for the newest."""
    if name not in self._configs:
      raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
    if not label:
      return version
    if label not in self._configs[name].labels:
      raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
    return self._configs[name].labels[label]

  def get(self, name: str, version: Optional[int] = None,
          label: Optional[str] = None) -> Version:
    """The requested version (by number or label), else the newest one."""
    number = self._number(name, version, label)
    versions = self._versions[name]
    if number is None:
      if not versions:
        raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
      return versions[max(versions)]
    if number not in versions:
      raise ServingError("NOT_FOUND",
                         f"Servable not found for request: Specific({name}, {number})")
    return versions[number]

  def status(self, name: str, version: Optional[int] = None,
             label: Optional[str] = None) -> get_model_status_pb2.GetModelStatusResponse:
    """TF Serving's GetModelStatusResponse: one version, or all (newest first)."""
    if name not in self._configs or not self._versions[name]:
      raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
    number = self._number(name, version, label)
    if number is not None and number not in self._versions[name]:
      raise ServingError("NOT_FOUND", f"Could not find version {number} of model {name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for loaded in [number] if number is not None else sorted(self._versions[name],
                                                            reverse=True):
      entry = response.model_version_status.add(
          version=loaded, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
      entry.status.SetInParent()  # error_code OK, printed as TF Serving does.
    return response
