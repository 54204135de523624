"""A client for one served model over TF Serving's REST or gRPC API: binary
and integer inputs of batch size one in, one binary (`*_bytes`) output back.

Every failure, the server's included, is a one-line `CodecError`.
"""

import base64
import binascii
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Optional, Union

from tfc_codecs.errors import CodecError

TIMEOUT_SECONDS = 600.


def _one_line(text: str) -> str:
  lines = str(text).strip().splitlines()
  return lines[0] if lines else ""


class Client:
  """Predict calls on `model_name` (its newest version, or `version`) at `server`."""

  def __init__(self, server: str, model_name: str, version: Optional[int] = None,
               use_grpc: bool = False):
    self.server = server
    self.model_name = model_name
    self.version = version
    self._stub = None
    if use_grpc:
      import grpc  # pylint: disable=import-outside-toplevel
      from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
      from tfc_codecs.serving.grpc_service import UNLIMITED_MESSAGES  # pylint: disable=import-outside-toplevel
      self._channel = grpc.insecure_channel(server, options=UNLIMITED_MESSAGES)
      self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

  def close(self) -> None:
    if self._stub is not None:
      self._channel.close()

  def predict(self, signature_name: str, inputs: Dict[str, Union[bytes, int]],
              output: str) -> bytes:
    """Runs the signature on one example; returns its `output` bytes."""
    if self._stub is not None:
      return self._predict_grpc(signature_name, inputs, output)
    return self._predict_rest(signature_name, inputs, output)

  def _predict_rest(self, signature_name, inputs, output) -> bytes:
    url = f"http://{self.server}/v1/models/{urllib.parse.quote(self.model_name, safe='')}"
    url += (f"/versions/{self.version}" if self.version is not None else "") + ":predict"
    body = {"signature_name": signature_name, "inputs": {
        name: [{"b64": base64.b64encode(v).decode("ascii")} if isinstance(v, bytes) else v]
        for name, v in inputs.items()}}
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as reply:
        response = json.load(reply)
    except urllib.error.HTTPError as e:
      try:
        message = json.load(e)["error"]
      except (ValueError, KeyError, TypeError):
        message = e.reason
      raise CodecError(f"server error (HTTP {e.code}): {_one_line(message)}") from None
    except (urllib.error.URLError, OSError) as e:
      reason = getattr(e, "reason", e)
      raise CodecError(f"cannot reach {self.server}: {_one_line(reason)}") from None
    except ValueError:
      raise CodecError(f"{self.server} did not answer with JSON") from None
    outputs = response.get("outputs") if isinstance(response, dict) else None
    if isinstance(outputs, dict) and set(outputs) != {"b64"}:
      outputs = outputs.get(output)  # Several outputs: the server names them.
    try:
      return base64.b64decode(outputs[0]["b64"], validate=True)
    except (TypeError, KeyError, IndexError, binascii.Error):
      raise CodecError(f"the server's response has no {output} bytes") from None

  def _predict_grpc(self, signature_name, inputs, output) -> bytes:
    import grpc  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
    request = predict_pb2.PredictRequest()
    request.model_spec.name = self.model_name
    if self.version is not None:
      request.model_spec.version.value = self.version
    request.model_spec.signature_name = signature_name
    for name, value in inputs.items():
      request.inputs[name].CopyFrom(tf.make_tensor_proto(
          [value], dtype=tf.string if isinstance(value, bytes) else tf.int32))
    request.output_filter.append(output)
    try:
      response = self._stub.Predict(request, timeout=TIMEOUT_SECONDS)
    except grpc.RpcError as e:
      raise CodecError(f"server error ({e.code().name}): {_one_line(e.details())}") from None
    if output not in response.outputs:
      raise CodecError(f"the server's response has no {output} bytes")
    values = tf.make_ndarray(response.outputs[output]).reshape(-1)
    if values.dtype != object or len(values) != 1:
      raise CodecError(f"the server's response has no {output} bytes")
    return values[0]
