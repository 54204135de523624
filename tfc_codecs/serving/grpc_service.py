"""TF Serving's gRPC API: PredictionService (Predict, GetModelMetadata) and
ModelService (GetModelStatus), with request errors as gRPC status codes."""

import traceback
from concurrent import futures
from typing import Tuple

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from tfc_codecs.serving.model_store import DEFAULT_SIGNATURE, ModelStore, ServingError, log

# Like tensorflow_model_server: no message size limit (images can be large).
UNLIMITED_MESSAGES = [("grpc.max_send_message_length", -1),
                      ("grpc.max_receive_message_length", -1)]


def _requested(model_spec) -> dict:
  """get()/status() arguments naming the version a ModelSpec asks for."""
  return dict(name=model_spec.name,
              version=model_spec.version.value if model_spec.HasField("version") else None,
              label=model_spec.version_label or None)


def _tensor(name: str, spec: tf.TensorSpec, proto) -> tf.Tensor:
  del spec  # The store checks dtype and shape against it.
  try:
    return tf.constant(tf.make_ndarray(proto), dtype=tf.as_dtype(proto.dtype))
  except (TypeError, ValueError) as e:
    raise ServingError("INVALID_ARGUMENT", f"input {name}: invalid TensorProto: {e}") from None


def _call(context, handle):
  """handle() -> response; ServingErrors abort the RPC with their code."""
  try:
    return handle()
  except ServingError as e:
    code, message = grpc.StatusCode[e.code], str(e)
  except Exception as e:  # pylint: disable=broad-except  # Keep serving.
    log(f"internal error in a gRPC call:\n{traceback.format_exc()}")
    code, message = grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}"
  context.abort(code, message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
  """Predict and GetModelMetadata on the store's models."""

  def __init__(self, store: ModelStore):
    self._store = store

  def Predict(self, request, context):  # pylint: disable=invalid-name
    return _call(context, lambda: self._predict(request))

  def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    return _call(context, lambda: self._metadata(request))

  def _predict(self, request) -> predict_pb2.PredictResponse:
    loaded = self._store.get(**_requested(request.model_spec))
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    outputs = loaded.predict(signature_name, dict(request.inputs), _tensor,
                             output_filter=list(request.output_filter))
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = loaded.number
    response.model_spec.signature_name = signature_name
    for name, array in outputs.items():
      response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
    return response

  def _metadata(self, request) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if not request.metadata_field:
      raise ServingError("INVALID_ARGUMENT",
                         "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
      if field != "signature_def":
        raise ServingError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
    loaded = self._store.get(**_requested(request.model_spec))
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = request.model_spec.name
    response.model_spec.version.value = loaded.number
    response.metadata["signature_def"].Pack(loaded.signature_defs)
    return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
  """GetModelStatus (HandleReloadConfigRequest stays unimplemented)."""

  def __init__(self, store: ModelStore):
    self._store = store

  def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
    return _call(context, lambda: self._store.status(**_requested(request.model_spec)))


def start(store: ModelStore, host: str, port: int,
          workers: int = 16) -> Tuple[grpc.Server, int]:
  """Serves on a thread pool; returns the server and its port."""
  server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                  thread_name_prefix="grpc"),
                       options=UNLIMITED_MESSAGES)
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionService(store), server)
  model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(store), server)
  address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
  port = server.add_insecure_port(address)
  server.start()
  return server, port
