"""TF Serving's REST API (/v1/models/...) on the standard library's HTTP server.

  POST /v1/models/NAME[/versions/V|/labels/L]:predict   row or columnar JSON
  GET  /v1/models/NAME[/versions/V|/labels/L]            version status
  GET  /v1/models/NAME[/versions/V|/labels/L]/metadata   signature defs

Requests and responses are shaped as TF Serving shapes them: binary strings
travel as {"b64": ...} (outputs whose name ends in `_bytes`), errors as
{"error": ...} with TF Serving's HTTP status for the error code.
"""

import base64
import binascii
import http.server
import json
import re
import socket
import threading
import traceback
import urllib.parse
from typing import Any, Dict, Tuple

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from tfc_codecs.serving.model_store import DEFAULT_SIGNATURE, ModelStore, ServingError, log

# TF Serving's HTTP status per error code (http_server.cc); others are 500.
HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
               "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409,
               "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401,
               "RESOURCE_EXHAUSTED": 429, "UNIMPLEMENTED": 501, "UNAVAILABLE": 503,
               "DEADLINE_EXCEEDED": 504, "CANCELLED": 499}

_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?"
                   r"(?::(predict|classify|regress)|/(metadata))?", re.IGNORECASE)


def _proto_json(message) -> Dict[str, Any]:
  return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                   including_default_value_fields=True)


def _json_text(value) -> str:
  text = json.dumps(value)
  return text if len(text) <= 100 else text[:100] + "..."


def _json_type(value) -> str:
  if value is None:
    return "Null"
  if isinstance(value, bool):
    return str(value)
  return {dict: "Object", list: "Array", str: "String"}.get(type(value), "Number")


def _is_b64(value) -> bool:
  return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _type_error(value, dtype: tf.DType) -> ServingError:
  return ServingError("INVALID_ARGUMENT", f"JSON Value: {_json_text(value)} Type: "
                      f"{_json_type(value)} is not of expected type: {dtype.name}")


def _leaf_converter(dtype: tf.DType):
  """A function: one JSON value -> a Python value of `dtype`, or ServingError."""

  def string(value):
    if isinstance(value, str):
      return value.encode("utf-8")
    if _is_b64(value):
      try:
        return base64.b64decode(value["b64"], validate=True)
      except binascii.Error:
        raise ServingError("INVALID_ARGUMENT", "Unable to base64 decode") from None
    raise _type_error(value, dtype)

  def boolean(value):
    if isinstance(value, bool):
      return value
    raise _type_error(value, dtype)

  def integer(value):
    if isinstance(value, int) and not isinstance(value, bool):
      if dtype.min <= value <= dtype.max:
        return value
      raise ServingError("INVALID_ARGUMENT", f"JSON Value: {value} is out of the "
                         f"range of {dtype.name}")
    raise _type_error(value, dtype)

  def floating(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return value
    raise _type_error(value, dtype)

  if dtype == tf.string:
    return string
  if dtype == tf.bool:
    return boolean
  if dtype.is_integer:
    return integer
  if dtype.is_floating:
    return floating
  raise ServingError("UNIMPLEMENTED", f"Conversion of JSON to type: {dtype.name}")


def to_tensor(name: str, spec: tf.TensorSpec, value) -> tf.Tensor:
  """A JSON value (a scalar or nested lists) as a tensor of the spec's dtype."""
  try:
    nested = np.array(value, dtype=object)
  except ValueError:
    nested = None
  if nested is None or any(isinstance(v, list) for v in nested.flat):
    raise ServingError("INVALID_ARGUMENT", f"input {name}: nested lists of unequal "
                       "lengths (not a dense tensor)")
  convert = _leaf_converter(spec.dtype)
  converted = np.empty(nested.shape, dtype=object)
  for index, leaf in np.ndenumerate(nested):
    converted[index] = convert(leaf)
  if spec.dtype != tf.string:
    try:
      converted = converted.astype(spec.dtype.as_numpy_dtype)
    except OverflowError:
      raise ServingError("INVALID_ARGUMENT", f"input {name}: a value is out of the "
                         f"range of {spec.dtype.name}") from None
  return tf.constant(converted, dtype=spec.dtype)


def _output_json(name: str, array: np.ndarray):
  """An output tensor as nested lists, TF Serving's way: `*_bytes` strings as
  {"b64": ...}, other strings as text, floats in their shortest form."""
  if array.dtype == object:
    if name.endswith("_bytes"):
      convert = lambda b: {"b64": base64.b64encode(b).decode("ascii")}
    else:
      convert = lambda b: b.decode("utf-8", "replace")
    converted = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
      converted[index] = convert(value)
    return converted.tolist()
  if array.dtype in (np.float16, np.float32):
    return array.astype(str).astype(np.float64).tolist()
  return array.tolist()


def _inputs_from_request(body: Dict[str, Any], specs: Dict[str, tf.TensorSpec]):
  """(inputs by name as JSON values, True for row format) from a predict body."""
  if not specs:
    raise ServingError("INVALID_ARGUMENT", "Failed to get input map for signature")
  if "instances" in body and "inputs" in body:
    raise ServingError("INVALID_ARGUMENT", "Not formatted correctly expecting only one "
                       "of 'inputs' or 'instances' keys to exist")
  if "instances" in body:
    instances = body["instances"]
    if not isinstance(instances, list):
      raise ServingError("INVALID_ARGUMENT", "Excepting 'instances' to be an list/array")
    if not instances:
      raise ServingError("INVALID_ARGUMENT", "No values in 'instances' array")
    named = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not named and len(specs) > 1:
      raise ServingError("INVALID_ARGUMENT", "instances is a plain list, but expecting "
                         "list of objects as multiple input tensors required as per "
                         "tensorinfo_map")
    if not named:
      for i, item in enumerate(instances):
        if isinstance(item, dict) and not _is_b64(item):
          raise ServingError("INVALID_ARGUMENT", "Expecting value/list but got object "
                             f"at item {i} of input list")
      return {next(iter(specs)): instances}, True
    for i, item in enumerate(instances):
      if not isinstance(item, dict) or _is_b64(item):
        raise ServingError("INVALID_ARGUMENT",
                           f"Expecting object but got list at item {i} of input list")
      if set(item) != set(specs):
        raise ServingError("INVALID_ARGUMENT", f"Failed to process element: {i} of "
                           f"'instances' list. JSON object: {_json_text(item)} must only "
                           f"have keys: {','.join(sorted(specs))}")
    return {name: [item[name] for item in instances] for name in specs}, True
  if "inputs" in body:
    inputs = body["inputs"]
    if isinstance(inputs, dict) and not _is_b64(inputs):
      for name in specs:
        if name not in inputs:
          raise ServingError("INVALID_ARGUMENT",
                             f"Missing named input: {name} in 'inputs' object.")
      return {name: inputs[name] for name in specs}, False
    if len(specs) > 1:
      raise ServingError("INVALID_ARGUMENT", "inputs is a plain value/list, but expecting "
                         "an object as multiple input tensors required as per "
                         "tensorinfo_map")
    return {next(iter(specs)): inputs}, False
  raise ServingError("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key")


def _predict_response(outputs: Dict[str, np.ndarray], row_format: bool) -> Dict[str, Any]:
  if not row_format:
    if len(outputs) == 1:
      return {"outputs": _output_json(*next(iter(outputs.items())))}
    return {"outputs": {name: _output_json(name, a) for name, a in outputs.items()}}
  batch_size = 0
  for name, array in outputs.items():
    if array.ndim == 0:
      raise ServingError("INVALID_ARGUMENT", f"Tensor name: {name} has no shape information ")
    if array.shape[0] < 1:
      raise ServingError("INVALID_ARGUMENT", f"Tensor name: {name} has invalid batch "
                         f"size: {array.shape[0]}")
    if batch_size and array.shape[0] != batch_size:
      raise ServingError("INVALID_ARGUMENT", f"Tensor name: {name} has inconsistent batch "
                         f"size: {array.shape[0]} expecting: {batch_size}")
    batch_size = array.shape[0]
  columns = {name: _output_json(name, array) for name, array in outputs.items()}
  if len(columns) == 1:
    return {"predictions": next(iter(columns.values()))}
  return {"predictions": [{name: column[i] for name, column in columns.items()}
                          for i in range(batch_size)]}


class RestServer(http.server.ThreadingHTTPServer):
  """A thread per connection; `close()` stops accepting and waits for the
  requests in flight."""

  daemon_threads = True  # Idle keep-alive connections do not delay shutdown.
  # socketserver's listen backlog is 5: a burst of clients connecting at once
  # overflowed it and got their connections reset.
  request_queue_size = socket.SOMAXCONN

  def __init__(self, address: Tuple[str, int], store: ModelStore):
    self.address_family = socket.getaddrinfo(*address, type=socket.SOCK_STREAM)[0][0]
    super().__init__(address, _Handler)
    self.store = store
    self._in_flight = 0
    self._closing = False
    self._idle = threading.Condition()

  def begin_request(self) -> bool:
    with self._idle:
      if self._closing:
        return False
      self._in_flight += 1
      return True

  def end_request(self) -> None:
    with self._idle:
      self._in_flight -= 1
      self._idle.notify_all()

  def close(self, grace_seconds: float) -> None:
    """Stops accepting; waits up to grace_seconds for requests in flight."""
    with self._idle:
      self._closing = True
    self.shutdown()
    with self._idle:
      self._idle.wait_for(lambda: self._in_flight == 0, grace_seconds)
    self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
  """Routes /v1/models/... requests to the model store."""

  protocol_version = "HTTP/1.1"
  server_version = "tfc_codecs"
  server: RestServer

  def do_GET(self):  # pylint: disable=invalid-name
    self._respond(self._get)

  def do_POST(self):  # pylint: disable=invalid-name
    self._respond(self._post)

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    """No access log (tensorflow_model_server has none)."""

  def _read_body(self) -> bytes:
    """The request body (Content-Length or chunked); ValueError if malformed."""
    if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
      chunks = []
      while True:
        size = int(self.rfile.readline().split(b";")[0], 16)
        if size == 0:
          while self.rfile.readline().strip():  # Trailer fields.
            pass
          return b"".join(chunks)
        chunks.append(self.rfile.read(size))
        self.rfile.readline()
    length = int(self.headers.get("Content-Length") or 0)
    if length < 0:
      raise ValueError(length)
    return self.rfile.read(length)

  def _respond(self, handle) -> None:
    try:
      body = self._read_body()
    except ValueError:
      self.close_connection = True
      self._send(400, {"error": "malformed request body framing"})
      return
    if not self.server.begin_request():
      self.close_connection = True
      self._send(503, {"error": "the server is shutting down"})
      return
    try:
      try:
        status, response = 200, handle(body)
      except ServingError as e:
        status, response = HTTP_STATUS.get(e.code, 500), {"error": str(e)}
      except Exception as e:  # pylint: disable=broad-except  # Keep serving.
        log(f"internal error on {self.command} {self.path}:\n{traceback.format_exc()}")
        status, response = 500, {"error": f"Internal error: {type(e).__name__}: {e}"}
      self._send(status, response)
    finally:
      self.server.end_request()

  def _send(self, status: int, response: Dict[str, Any]) -> None:
    data = json.dumps(response).encode("utf-8")
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def _route(self):
    """(model name, version, label, method, metadata) of a /v1/models/ path."""
    path = self.path.split("?", 1)[0]
    match = _PATH.fullmatch(path)
    if not match:
      raise ServingError("NOT_FOUND" if not path.startswith("/v1/") else "INVALID_ARGUMENT",
                         f"Malformed request: {self.command} {path}")
    name, version, label, method, metadata = match.groups()
    return (urllib.parse.unquote(name), int(version) if version else None,
            label and urllib.parse.unquote(label), method, metadata)

  def _get(self, _) -> Dict[str, Any]:
    name, version, label, method, metadata = self._route()
    if method:
      raise ServingError("INVALID_ARGUMENT", f"Malformed request: GET {self.path}")
    store = self.server.store
    if not metadata:
      return _proto_json(store.status(name, version, label))
    loaded = store.get(name, version, label)
    return {"model_spec": {"name": name, "signature_name": "", "version": str(loaded.number)},
            "metadata": {"signature_def": _proto_json(loaded.signature_defs)}}

  def _post(self, body: bytes) -> Dict[str, Any]:
    name, version, label, method, metadata = self._route()
    if metadata or not method:
      raise ServingError("INVALID_ARGUMENT", f"Malformed request: POST {self.path}")
    if method.lower() != "predict":
      raise ServingError("UNIMPLEMENTED", f"{method} is not supported (only predict)")
    loaded = self.server.store.get(name, version, label)
    if not body:
      raise ServingError("INVALID_ARGUMENT", "JSON Parse error: The document is empty")
    try:
      request = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
      raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {e}") from None
    if not isinstance(request, dict):
      raise ServingError("INVALID_ARGUMENT", f"JSON Value: {_json_text(request)} Is not object")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
      raise ServingError("INVALID_ARGUMENT", "'signature_name' key must be a string value.")
    inputs, row_format = _inputs_from_request(request, loaded.input_specs(signature_name))
    outputs = loaded.predict(signature_name, inputs, to_tensor)
    return _predict_response(outputs, row_format)


def start(store: ModelStore, host: str, port: int) -> Tuple[RestServer, int]:
  """Serves in a background thread; returns the server and its port."""
  server = RestServer((host, port), store)
  threading.Thread(target=server.serve_forever, name="rest", daemon=True).start()
  return server, server.server_address[1]
