"""`tfc_codecs serve` and `tfc_codecs client`: TF Serving's REST and gRPC APIs
in a server subprocess, on a stand-in SavedModel with the export's signature
names (fast, several versions) and on real exports (fixed and variable rate),
bit-exact against the local API; docs/serving.md's curl lines as written.

One server (its ports read from its stdout) serves the whole module; a second
one checks that SIGTERM finishes the requests in flight.
"""

import base64
import concurrent.futures
import http.client
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

import tfc_codecs
from tfc_codecs import export, images
from tfc_codecs.errors import CodecError
from tfc_codecs.serving import model_store
from tfc_codecs.serving.commands import start_server

from conftest import MODEL_DIRS, MODELS, PHOTO_PATHS, REPO, subprocess_env
from test_export import doc_commands

pytestmark = pytest.mark.slow  # Server subprocesses.

EXPORT_SIGNATURES = {"serving_default", "compress", "compress_image", "decompress",
                     "decompress_image"}
VARIABLE_RATE = MODELS / "hyperprior_vr_tiny"


class StandIn(tf.Module):
  """The export's signatures on a trivial "codec": a file is TFCI, the quality
  as three digits, then the PNG. Plus `describe` (two outputs, float and text)
  and `slow` (creates a file, then is busy for a given time: a request in
  flight)."""

  def __init__(self, tag: str):
    super().__init__()
    self.tag = tag

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                                tf.TensorSpec([None], tf.int32, name="quality")])
  def compress(self, image_bytes, quality):
    header = tf.strings.join(["TFCI", tf.strings.as_string(quality, width=3, fill="0")])
    return {"bitstream_bytes": tf.strings.join([header, image_bytes])}

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="image")])
  def compress_image(self, image):
    return {"bitstream_bytes": tf.strings.join(["TFCI000", tf.io.encode_png(image[0])])[None]}

  def _payload(self, bitstream_bytes):
    magic = tf.strings.substr(bitstream_bytes, 0, 4)
    with tf.control_dependencies([tf.debugging.Assert(
        tf.reduce_all(tf.equal(magic, "TFCI")), ["not a stand-in .tfci file"])]):
      return tf.strings.substr(bitstream_bytes, 7, -1)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="bitstream_bytes")])
  def decompress(self, bitstream_bytes):
    return {"png_bytes": self._payload(bitstream_bytes)}

  @tf.function(input_signature=[tf.TensorSpec([1], tf.string, name="bitstream_bytes")])
  def decompress_image(self, bitstream_bytes):
    return {"image": tf.io.decode_png(self._payload(bitstream_bytes)[0], channels=3)[None]}

  @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
  def describe(self, x):
    return {"doubled": 2 * x, "version": tf.fill(tf.shape(x)[:1], self.tag)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float64, name="seconds"),
                                tf.TensorSpec([None], tf.string, name="started_file")])
  def slow(self, seconds, started_file):
    with tf.control_dependencies([tf.io.write_file(started_file[0], "")]):
      start = tf.timestamp()
    tf.while_loop(lambda i: tf.timestamp() - start < seconds[0], lambda i: i + 1, [0])
    return {"slept": seconds}

  def save(self, path: str) -> None:
    tf.saved_model.save(self, path, signatures=dict(
        serving_default=self.compress, compress=self.compress,
        compress_image=self.compress_image,
        decompress=self.decompress, decompress_image=self.decompress_image,
        describe=self.describe, slow=self.slow))


class Server:
  """A `tfc_codecs serve` subprocess; its REST and gRPC addresses."""

  def __init__(self, log_path, *args):
    self.log_path = log_path
    with open(log_path, "w") as log:
      try:
        self.process, addresses = start_server(
            ["--rest_api_port", "0", "--port", "0", *args], cwd=str(REPO),
            env=subprocess_env(), stderr=log)
      except CodecError:
        pytest.fail(f"the server did not start:\n{self.log()}")
    self.rest, self.grpc = f"http://{addresses['REST']}", addresses["gRPC"]
    self.channel = grpc.insecure_channel(self.grpc)
    self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
    self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

  def log(self) -> str:
    with open(self.log_path) as f:
      return f.read()

  def stop(self) -> int:
    self.channel.close()
    self.process.send_signal(signal.SIGTERM)
    try:
      return self.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
      self.process.kill()
      raise

  def request(self, path, body=None):
    """(HTTP status, JSON) of a GET, or of a POST of `body` (JSON or bytes)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    try:
      with urllib.request.urlopen(urllib.request.Request(self.rest + path, data=data),
                                  timeout=120) as reply:
        return reply.status, json.load(reply)
    except urllib.error.HTTPError as e:
      return e.code, json.load(e)


def b64(data: bytes) -> dict:
  return {"b64": base64.b64encode(data).decode()}


def unb64(value: dict) -> bytes:
  assert set(value) == {"b64"}, value
  return base64.b64decode(value["b64"])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
  """Model base paths: standin (versions 1, 2), hyperprior and vr (exported)."""
  root = tmp_path_factory.mktemp("served")
  StandIn("v1").save(str(root / "standin" / "1"))
  StandIn("v2").save(str(root / "standin" / "2"))
  export.export(str(MODEL_DIRS["hyperprior"]), str(root), model_name="hyperprior")
  export.export(str(VARIABLE_RATE), str(root), model_name="vr")
  (root / "models.txt").write_text(
      f'model_config_list {{\n'
      f'  config {{ name: "standin" base_path: "{root / "standin"}" '
      f'model_platform: "tensorflow" version_labels {{ key: "stable" value: 1 }} }}\n'
      f'  config {{ name: "hyperprior" base_path: "{root / "hyperprior"}" '
      f'model_platform: "tensorflow" }}\n'
      f'  config {{ name: "vr" base_path: "{root / "vr"}" }}\n}}\n')
  return root


@pytest.fixture(scope="module")
def server(base):
  running = Server(base / "server.log", "--model_config_file", base / "models.txt",
                   "--poll_seconds", "0.5")
  yield running
  assert running.stop() == 0, running.log()


@pytest.fixture(scope="module")
def expected(photos):
  """Photo file name -> (PNG bytes, .tfci bytes, decoded PNG bytes), local API
  (stock-coded, as the default export writes)."""
  codec = tfc_codecs.load(str(MODEL_DIRS["hyperprior"]), ops="stock")
  result = {}
  for path in PHOTO_PATHS:
    data = codec.compress(photos[path.name])
    result[path.name] = (path.read_bytes(), data, images.encode_png(codec.decompress(data)))
  return result


@pytest.fixture(scope="module")
def variable_rate(photos):
  """(stock-coded library codec of the vr export, PNG bytes, file at the default
  quality, file at quality 1) of the first photo."""
  codec = tfc_codecs.load(str(VARIABLE_RATE), ops="stock")
  photo = photos[PHOTO_PATHS[0].name]
  return codec, PHOTO_PATHS[0].read_bytes(), codec.compress(photo), codec.compress(photo, 1)


# REST -------------------------------------------------------------------------
def test_status_and_metadata(server):
  ok = {"error_code": "OK", "error_message": ""}
  assert server.request("/v1/models/standin") == (200, {"model_version_status": [
      {"version": "2", "state": "AVAILABLE", "status": ok},
      {"version": "1", "state": "AVAILABLE", "status": ok}]})
  assert server.request("/v1/models/standin/versions/1")[1]["model_version_status"] == [
      {"version": "1", "state": "AVAILABLE", "status": ok}]
  assert server.request("/v1/models/standin/labels/stable")[1][
      "model_version_status"][0]["version"] == "1"
  status, body = server.request("/v1/models/hyperprior/metadata")
  assert status == 200
  assert body["model_spec"] == {"name": "hyperprior", "signature_name": "", "version": "1"}
  signatures = body["metadata"]["signature_def"]["signature_def"]
  assert EXPORT_SIGNATURES <= set(signatures)
  assert signatures["serving_default"]["method_name"] == "tensorflow/serving/predict"
  image_bytes = signatures["serving_default"]["inputs"]["image_bytes"]
  assert image_bytes["dtype"] == "DT_STRING"
  assert image_bytes["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
  assert signatures["decompress_image"]["outputs"]["image"]["dtype"] == "DT_UINT8"
  status, body = server.request("/v1/models/standin/versions/1/metadata")
  assert status == 200 and body["model_spec"]["version"] == "1"
  assert server.request("/v1/models/nope")[0] == 404
  assert server.request("/v1/models/standin/versions/9")[0] == 404
  assert server.request("/v1/models/standin/versions/9/metadata")[0] == 404
  assert server.request("/v1/models/standin/labels/nope")[0] == 400


def test_row_and_columnar_predict(server):
  # Two inputs: row format names them in each instance; one output comes bare.
  assert server.request("/v1/models/standin:predict", {"instances": [
      {"image_bytes": b64(b"\x00\xff"), "quality": 7},
      {"image_bytes": "text", "quality": 12}]}) == (
          200, {"predictions": [b64(b"TFCI007\x00\xff"), b64(b"TFCI012text")]})
  assert server.request("/v1/models/standin:predict", {
      "signature_name": "serving_default",
      "inputs": {"image_bytes": [b64(b"ab")], "quality": [3]}}) == (
          200, {"outputs": [b64(b"TFCI003ab")]})
  # One input: plain values (a single value too, in columnar format).
  assert server.request("/v1/models/standin:predict", {
      "signature_name": "decompress", "instances": [b64(b"TFCI001xy"), "TFCI002z"]}) == (
          200, {"predictions": [b64(b"xy"), b64(b"z")]})
  assert server.request("/v1/models/standin:predict", {
      "signature_name": "decompress", "inputs": [b64(b"TFCI001xy")]}) == (
          200, {"outputs": [b64(b"xy")]})
  # Two outputs: objects per instance / a dict; text strings stay text; floats
  # print in their shortest form; a version URL picks the version.
  describe = {"signature_name": "describe", "instances": [[0.1, 1], [2.5, -3]]}
  assert server.request("/v1/models/standin/versions/1:predict", describe) == (
      200, {"predictions": [{"doubled": [0.2, 2.0], "version": "v1"},
                            {"doubled": [5.0, -6.0], "version": "v1"}]})
  assert server.request("/v1/models/standin:predict", describe)[1]["predictions"][0][
      "version"] == "v2"
  assert server.request("/v1/models/standin/labels/stable:predict", {
      "signature_name": "describe", "inputs": {"x": [[1, 2]]}}) == (
          200, {"outputs": {"doubled": [[2.0, 4.0]], "version": ["v1"]}})
  # A chunked body (no Content-Length).
  connection = http.client.HTTPConnection(server.rest[len("http://"):], timeout=60)
  connection.request("POST", "/v1/models/standin:predict", body=iter([
      b'{"signature_name": "decompress", ', b'"inputs": ["TFCI001ok"]}']))
  reply = connection.getresponse()
  assert (reply.status, json.loads(reply.read())) == (200, {"outputs": [b64(b"ok")]})
  connection.close()


def test_real_model_rest_round_trip(server, expected, photos):
  names = sorted(expected)
  status, body = server.request("/v1/models/hyperprior:predict", {
      "instances": [b64(expected[n][0]) for n in names]})
  assert status == 200
  assert [unb64(v) for v in body["predictions"]] == [expected[n][1] for n in names]
  status, body = server.request("/v1/models/hyperprior/versions/1:predict", {
      "signature_name": "decompress", "inputs": [b64(expected[n][1]) for n in names]})
  assert status == 200
  assert [unb64(v) for v in body["outputs"]] == [expected[n][2] for n in names]
  # The uint8 signatures, with the image as nested lists.
  name = names[0]
  status, body = server.request("/v1/models/hyperprior:predict", {
      "signature_name": "compress_image", "instances": [photos[name].tolist()]})
  assert status == 200 and unb64(body["predictions"][0]) == expected[name][1]
  status, body = server.request("/v1/models/hyperprior:predict", {
      "signature_name": "decompress_image", "inputs": {"bitstream_bytes": [
          b64(expected[name][1])]}})
  assert status == 200
  decoded = images.decode_image(expected[name][2])[0]
  np.testing.assert_array_equal(np.array(body["outputs"], np.uint8), decoded[None])


def test_quality_is_optional(server, variable_rate):
  """A variable-rate export: a request with only the image (serving_default,
  or compress over gRPC) gets the default quality; `compress` takes one."""
  codec, png, default, quality_1 = variable_rate
  assert default != quality_1 and default == codec.compress(
      images.decode_image(png)[0], codec.default_quality)
  status, body = server.request("/v1/models/vr:predict", {
      "instances": [{"image_bytes": b64(png)}]})
  assert status == 200 and [unb64(v) for v in body["predictions"]] == [default]
  status, body = server.request("/v1/models/vr:predict", {
      "signature_name": "compress", "instances": [{"image_bytes": b64(png), "quality": 1}]})
  assert status == 200 and [unb64(v) for v in body["predictions"]] == [quality_1]
  status, body = server.request("/v1/models/vr:predict", {  # TF Serving's REST rule.
      "signature_name": "compress", "instances": [{"image_bytes": b64(png)}]})
  assert status == 400 and "must only have keys" in body["error"]

  def grpc_predict(signature, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "vr"
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
      request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return tf.make_ndarray(server.predictions.Predict(request, timeout=120).outputs[
        "bitstream_bytes"]).tolist()

  assert grpc_predict("compress", image_bytes=[png]) == [default]
  assert grpc_predict("compress", image_bytes=[png], quality=[1]) == [quality_1]
  assert grpc_predict("", image_bytes=[png]) == [default]
  image = images.decode_image(png)[0][None]
  assert grpc_predict("compress_image", image=image) == [default]
  with pytest.raises(grpc.RpcError) as error:
    grpc_predict("", image_bytes=[png], quality=[1])
  assert "Sent extra: {quality}" in error.value.details()


def test_docs_curl_examples(server, variable_rate, tmp_path):
  """docs/serving.md's curl lines, run as written (against the vr export)."""
  _, png, default, quality_1 = variable_rate
  (tmp_path / "photo.png").write_bytes(png)
  commands = doc_commands(("curl",))
  assert len(commands) == 2, commands
  answers = []
  for command in commands:
    assert "localhost:8501/v1/models/default:" in command
    command = command.replace("localhost:8501/v1/models/default:",
                              f"{server.rest}/v1/models/vr:")
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                            text=True, check=True)
    answers.append([unb64(v) for v in json.loads(result.stdout)["predictions"]])
  assert answers == [[default], [quality_1]]


def test_bad_requests_get_errors_and_the_server_keeps_serving(server, expected):
  name = sorted(expected)[0]
  good = json.dumps({"inputs": [b64(expected[name][0])]})
  garbage = expected[name][1][:20] + b"garbage" + expected[name][1][27:]
  cases = [  # (path, body, status, part of the error)
      ("/v1/models/hyperprior:predict", '{"inputs": [', 400, "JSON Parse error"),
      ("/v1/models/hyperprior:predict", "[1]", 400, "Is not object"),
      ("/v1/models/hyperprior:predict", '{"instances": []}', 400, "No values"),
      ("/v1/models/hyperprior:predict", '{"other": 1}', 400, "Missing 'inputs'"),
      ("/v1/models/hyperprior:predict", json.dumps({
          "signature_name": "nope", "inputs": ["x"]}), 400, 'key "nope" not found'),
      ("/v1/models/standin:predict", json.dumps({"inputs": {
          "image_bytes": ["a"], "quality": ["high"]}}), 400, "expected type: int32"),
      ("/v1/models/standin:predict", json.dumps({"inputs": {
          "image_bytes": ["a"], "quality": [1.5]}}), 400, "expected type: int32"),
      ("/v1/models/standin:predict", json.dumps({"inputs": {
          "image_bytes": [1], "quality": [1]}}), 400, "expected type: string"),
      ("/v1/models/standin:predict", json.dumps({"inputs": {
          "image_bytes": ["a"]}}), 400, "Missing named input: quality"),
      ("/v1/models/standin:predict", json.dumps({"instances": [
          {"image_bytes": "a", "quality": 1, "extra": 2}]}), 400, "must only have keys"),
      ("/v1/models/standin:predict", json.dumps({"inputs": {
          "image_bytes": ["a", "b"], "quality": [[1, 2], [3]]}}), 400, "unequal lengths"),
      ("/v1/models/hyperprior:predict", json.dumps({
          "signature_name": "compress_image", "inputs": [[[0, 0, 0]]]}), 400, "shape"),
      ("/v1/models/hyperprior:predict", json.dumps({
          "signature_name": "compress_image", "inputs": [[[[0, 0, 256]]]]}), 400, "range"),
      ("/v1/models/hyperprior:predict", json.dumps({"inputs": [{"b64": "!!"}]}), 400,
       "base64"),
      ("/v1/models/hyperprior:predict", json.dumps({"inputs": [b64(b"not an image")]}),
       400, ""),  # Whichever decoding op fails first.
      ("/v1/models/hyperprior:predict", json.dumps({
          "signature_name": "decompress", "inputs": [b64(garbage)]}), 400, ".tfci"),
      ("/v1/models/standin:predict", json.dumps({
          "signature_name": "decompress", "inputs": ["junk"]}), 400, "not a stand-in"),
      ("/v1/models/nope:predict", good, 404, "Servable not found"),
      ("/v1/models/hyperprior/versions/2:predict", good, 404, "Specific(hyperprior, 2)"),
      ("/v1/models/hyperprior:frobnicate", good, 400, "Malformed request"),
  ]
  connection = http.client.HTTPConnection(server.rest[len("http://"):], timeout=120)
  for path, body, status, message in cases:  # One keep-alive connection for all.
    connection.request("POST", path, body=body)
    reply = connection.getresponse()
    error = json.loads(reply.read())["error"]
    assert (reply.status, "\n" in error) == (status, False), (path, body[:80], error)
    assert message in error, (path, body[:80], error)
    connection.request("POST", "/v1/models/hyperprior:predict", body=good)
    reply = connection.getresponse()
    assert reply.status == 200
    assert unb64(json.loads(reply.read())["outputs"][0]) == expected[name][1]
  connection.close()


def test_concurrent_clients_get_bit_exact_answers(server, expected):
  names = sorted(expected)
  requests = [({"inputs": [b64(expected[n][0])]}, expected[n][1]) for n in names] + [
      ({"signature_name": "decompress", "inputs": [b64(expected[n][1])]}, expected[n][2])
      for n in names]
  start = threading.Barrier(16)

  def client(index):
    start.wait()
    wrong = 0
    for i in range(20):
      body, answer = requests[(index + i) % len(requests)]
      status, reply = server.request("/v1/models/hyperprior:predict", body)
      wrong += status != 200 or unb64(reply["outputs"][0]) != answer
    return wrong

  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    assert list(pool.map(client, range(16))) == [0] * 16


# gRPC -------------------------------------------------------------------------
def test_grpc_predict_metadata_and_status(server, expected):
  names = sorted(expected)
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "hyperprior"
  request.inputs["image_bytes"].CopyFrom(
      tf.make_tensor_proto([expected[n][0] for n in names]))
  response = server.predictions.Predict(request, timeout=120)
  assert response.model_spec.version.value == 1
  assert response.model_spec.signature_name == "serving_default"
  files = tf.make_ndarray(response.outputs["bitstream_bytes"])
  assert list(files) == [expected[n][1] for n in names]
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "hyperprior"
  request.model_spec.version.value = 1
  request.model_spec.signature_name = "decompress_image"
  request.inputs["bitstream_bytes"].CopyFrom(tf.make_tensor_proto([expected[names[0]][1]]))
  image = tf.make_ndarray(server.predictions.Predict(request, timeout=120).outputs["image"])
  np.testing.assert_array_equal(image[0], images.decode_image(expected[names[0]][2])[0])

  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
  request.model_spec.name = "hyperprior"
  response = server.predictions.GetModelMetadata(request, timeout=60)
  assert response.model_spec.version.value == 1
  signatures = get_model_metadata_pb2.SignatureDefMap()
  assert response.metadata["signature_def"].Unpack(signatures)
  assert EXPORT_SIGNATURES <= set(signatures.signature_def)
  assert signatures.signature_def["decompress"].outputs["png_bytes"].dtype == tf.string

  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = "standin"
  versions = server.models.GetModelStatus(request, timeout=60).model_version_status
  assert [(v.version, v.state) for v in versions] == [
      (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
      (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]


def test_grpc_errors(server, expected):
  name = sorted(expected)[0]

  def predict(model="hyperprior", signature="", version=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version:
      request.model_spec.version.value = version
    for key, value in inputs.items():
      request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    with pytest.raises(grpc.RpcError) as error:
      server.predictions.Predict(request, timeout=60)
    return error.value.code(), error.value.details()

  assert predict("nope", image_bytes=[b"x"])[0] == grpc.StatusCode.NOT_FOUND
  assert predict(version=5, image_bytes=[b"x"])[0] == grpc.StatusCode.NOT_FOUND
  assert predict(signature="nope", image_bytes=[b"x"])[0] == (
      grpc.StatusCode.FAILED_PRECONDITION)
  code, details = predict(image_bytes=np.array([1.5], np.float32))
  assert code == grpc.StatusCode.INVALID_ARGUMENT and "float" in details
  code, details = predict(quality=[1])
  assert code == grpc.StatusCode.INVALID_ARGUMENT and "image_bytes" in details
  code, details = predict(signature="decompress", bitstream_bytes=[b"TFCI garbage"])
  assert code == grpc.StatusCode.INVALID_ARGUMENT and "\n" not in details
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["other"])
  request.model_spec.name = "hyperprior"
  with pytest.raises(grpc.RpcError) as error:
    server.predictions.GetModelMetadata(request, timeout=60)
  assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  request = predict_pb2.PredictRequest()  # Still serving.
  request.model_spec.name = "hyperprior"
  request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([expected[name][0]]))
  assert tf.make_ndarray(server.predictions.Predict(request, timeout=60).outputs[
      "bitstream_bytes"])[0] == expected[name][1]


# Versions, the client, shutdown ------------------------------------------------
def wait_for_versions(server, model, versions, timeout=60):
  deadline = time.time() + timeout
  while True:
    status, body = server.request(f"/v1/models/{model}")
    found = [v["version"] for v in body.get("model_version_status", [])]
    if found == versions or time.time() > deadline:
      return found
    time.sleep(0.2)


def test_new_versions_are_picked_up_without_restart(server, base):
  # A half-written version is skipped, and loaded once complete.
  half = base / "standin" / "4"
  half.mkdir()
  (half / "saved_model.pb").write_bytes(b"half written")
  staging = base / "standin" / ".staging"
  shutil.copytree(base / "standin" / "2", staging)
  os.rename(staging, base / "standin" / "3")
  assert wait_for_versions(server, "standin", ["3", "2", "1"]) == ["3", "2", "1"]
  assert server.request("/v1/models/standin/versions/3:predict", {
      "signature_name": "decompress", "inputs": ["TFCI001new"]}) == (
          200, {"outputs": [b64(b"new")]})
  shutil.rmtree(half)
  shutil.copytree(base / "standin" / "1", half)
  assert wait_for_versions(server, "standin", ["4", "3", "2", "1"]) == ["4", "3", "2", "1"]
  assert server.request("/v1/models/standin:predict", {
      "signature_name": "describe", "inputs": [[0, 0]]})[1]["outputs"]["version"] == ["v1"]
  assert "cannot load model standin version 4" in server.log()


def test_client_commands(server, expected, tmp_path, run_cli):
  name = sorted(expected)[0]
  (tmp_path / name).write_bytes(expected[name][0])
  rest, address = server.rest[len("http://"):], server.grpc
  result = run_cli("client", "compress", "--server", rest, "--model_name", "hyperprior",
                   name, cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert (tmp_path / f"{name}.tfci").read_bytes() == expected[name][1]
  result = run_cli("client", "decompress", "--server", address, "--grpc",
                   "--model_name", "hyperprior", f"{name}.tfci", cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert (tmp_path / f"{name}.tfci.png").read_bytes() == expected[name][2]
  # Local naming rules: no clobbering, --output; server errors are one line per file.
  (tmp_path / "bad.tfci").write_bytes(b"TFCI" + bytes(40))
  (tmp_path / "out").mkdir()
  result = run_cli("client", "decompress", "--server", rest, "--model_name", "hyperprior",
                   "--output", "out", "bad.tfci", f"{name}.tfci", cwd=tmp_path)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 1 and len(lines) == 1, result.stderr
  assert lines[0].startswith("tfc_codecs: error: bad.tfci: server error (HTTP 400): ")
  assert (tmp_path / "out" / f"{name}.tfci.png").read_bytes() == expected[name][2]
  assert not (tmp_path / "out" / "bad.tfci.png").exists()
  result = run_cli("client", "compress", "--server", rest, "--model_name", "hyperprior",
                   name, cwd=tmp_path)
  assert result.returncode == 1
  assert result.stderr.strip() == (f"tfc_codecs: error: output {name}.tfci exists "
                                   "(use --overwrite to replace it)")
  result = run_cli("client", "compress", "--server", rest, "--model_name", "nope",
                   "--overwrite", name, cwd=tmp_path)
  assert result.returncode == 1 and result.stderr.strip() == (
      f"tfc_codecs: error: {name}: server error (HTTP 404): "
      "Servable not found for request: Latest(nope)")
  result = run_cli("client", "compress", "--server", rest, "--model_name", "standin",
                   "--quality", "5", "--output", "q5.tfci", name, cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert (tmp_path / "q5.tfci").read_bytes() == b"TFCI005" + expected[name][0]
  # A variable-rate export: --quality goes to `compress`, none gets the default.
  result = run_cli("client", "compress", "--server", rest, "--model_name", "vr",
                   "--quality", "1", "--output", "vr1.tfci", name, cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  result = run_cli("client", "compress", "--server", address, "--grpc", "--model_name", "vr",
                   "--output", "vr.tfci", name, cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  codec = tfc_codecs.load(str(VARIABLE_RATE), ops="stock")
  photo = images.decode_image(expected[name][0])[0]
  assert (tmp_path / "vr1.tfci").read_bytes() == codec.compress(photo, 1)
  assert (tmp_path / "vr.tfci").read_bytes() == codec.compress(photo)
  assert not [p for p in tmp_path.rglob(".tmp-*")]


@pytest.mark.parametrize("args, message", [
    (["serve"], "give either --model_base_path or --model_config_file"),
    (["serve", "--model_base_path", ".", "--max_concurrent_runs", "0"],
     "--max_concurrent_runs must be at least 1"),
    (["client", "compress", "--server", "localhost", "--model_name", "m", "x.png"],
     "--server must be HOST:PORT, not 'localhost'"),
    (["client", "decompress", "--server", "127.0.0.1:1", "--model_name", "m", "x.tfci"],
     "x.tfci: cannot reach 127.0.0.1:1: [Errno 111] Connection refused")])
def test_command_line_errors(run_cli, tmp_path, args, message):
  (tmp_path / "x.tfci").write_bytes(b"TFCI")
  result = run_cli(*args, cwd=tmp_path)
  assert (result.returncode, result.stderr) == (1, f"tfc_codecs: error: {message}\n")


def test_config_file_and_version_policies(tmp_path):
  path = tmp_path / "models.config"
  path.write_text("""model_config_list {
    config { name: "a" base_path: "rel/a" version_labels { key: "stable" value: 3 }
             model_version_policy { latest { num_versions: 2 } } }
    config { name: "b" base_path: "/b" model_platform: "tensorflow"
             model_version_policy { specific { versions: 1 versions: 4 } } }
  }""")
  a, b = model_store.read_config_file(str(path))
  assert (a.name, a.base_path, a.labels) == ("a", os.path.abspath("rel/a"), {"stable": 3})
  assert model_store.select_versions(a.version_policy, [1, 5, 3]) == {3, 5}
  assert model_store.select_versions(b.version_policy, [1, 2, 3]) == {1}
  assert model_store.select_versions(None, [1, 2]) == {1, 2}
  for text, message in [
      ('model_config_list { config { name: "a" ', "models.config:"),
      ('model_config_list { config { name: "a" base_path: "/a" model_platform: "torch" } }',
       "model_platform"),
      ('model_config_list { config { name: "a" base_path: "/a" } '
       'config { name: "a" base_path: "/b" } }', "twice"),
      ("", "expected a model_config_list")]:
    path.write_text(text)
    with pytest.raises(CodecError, match=message):
      model_store.read_config_file(str(path))


def test_sigterm_finishes_requests_in_flight_and_exits_0(base):
  shutil.copytree(base / "standin" / "2", base / "codec" / "1")
  second = Server(base / "second.log", "--model_base_path", base / "codec",
                  "--model_name", "codec", "--poll_seconds", "0")
  started_file = base / "slow_request_started"
  slow = concurrent.futures.ThreadPoolExecutor(1).submit(
      second.request, "/v1/models/codec:predict", {
          "signature_name": "slow", "inputs": {"seconds": [1.5],
                                               "started_file": [str(started_file)]}})
  deadline = time.time() + 60
  while not started_file.exists() and time.time() < deadline:
    time.sleep(0.05)
  assert started_file.exists(), second.log()
  assert second.stop() == 0, second.log()
  assert slow.result() == (200, {"outputs": [1.5]})
  assert "SIGTERM: finishing requests in flight" in second.log()


def test_concurrent_runs_are_bounded(base, tmp_path):
  """With max_concurrent_runs=1 a second call waits until the first has finished."""
  store = model_store.ModelStore(
      [model_store.ModelConfig("standin", str(base / "standin"))], 0, max_concurrent_runs=1)
  store.start()
  version = store.get("standin")
  convert = lambda name, spec, value: tf.constant(value, spec.dtype)
  first, second = tmp_path / "first_started", tmp_path / "second_started"
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    running = pool.submit(version.predict, "slow", {
        "seconds": [1.5], "started_file": [str(first)]}, convert)
    while not first.exists():
      time.sleep(0.01)
    waiting = pool.submit(version.predict, "slow", {
        "seconds": [0.], "started_file": [str(second)]}, convert)
    time.sleep(0.5)
    assert not second.exists() and not running.done()
    running.result(), waiting.result()
  assert second.exists()
  with pytest.raises(CodecError, match="at least 1"):
    model_store.ModelStore([], 0, max_concurrent_runs=0)
