"""What the stand-in says about itself: Prometheus metrics under TF Serving's names, and its log."""

from __future__ import annotations

import re

import grpc
import pytest
import tensorflow as tf
from standin_support import WARMUP_RECORDS, StandIn, digits_batch, http, sample, scrape
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

COUNT = ":tensorflow:serving:request_count"
LATENCY_COUNT = ":tensorflow:serving:request_latency_count"


def grpc_predict(standin: StandIn, model: str) -> None:
    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.inputs["input"].CopyFrom(tf.make_tensor_proto(digits_batch(1)))
    with grpc.insecure_channel(standin.grpc_target) as channel:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(req, timeout=30)


def test_metrics_mark_the_stand_in(standin: StandIn) -> None:
    samples = scrape(standin)
    info = [labels for (name, labels) in samples if name == "twinserve_tfserving_standin_info"]
    assert len(info) == 1
    assert "STAND-IN (not TensorFlow Serving)" in dict(info[0])["implementation"]


def test_request_count_and_latency_use_the_real_servers_names(standin: StandIn) -> None:
    before = scrape(standin)
    for _ in range(2):
        body = {"instances": digits_batch(1).tolist()}
        assert http("POST", f"{standin.rest}/v1/models/digits:predict", body)[0] == 200
    grpc_predict(standin, "digits")
    assert http("POST", f"{standin.rest}/v1/models/digits:predict", {"instances": [[1.0]]})[0] == 400
    with pytest.raises(grpc.RpcError):
        grpc_predict(standin, "not_a_model")
    after = scrape(standin)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta(COUNT, model_name="digits", status="OK") == 3
    assert delta(COUNT, model_name="digits", status="INVALID_ARGUMENT") == 1
    assert delta(LATENCY_COUNT, model_name="digits", API="Predict", entrypoint="REST") == 2
    assert delta(LATENCY_COUNT, model_name="digits", API="Predict", entrypoint="GRPC") == 1
    # Latency is in microseconds, as the real server's: a served request takes more than 10 us.
    assert (
        sample(
            after,
            ":tensorflow:serving:request_latency_sum",
            model_name="digits",
            API="Predict",
            entrypoint="GRPC",
        )
        > 10
    )
    # Labels stay bounded: a model name a client made up never becomes a series.
    assert not any(dict(labels).get("model_name") == "not_a_model" for (_, labels) in after)


def test_the_log_says_stand_in_names_the_ports_and_counts_warmup_replays(standin: StandIn) -> None:
    log = standin.log()
    assert "STAND-IN (not TensorFlow Serving)" in log
    assert f"Running gRPC ModelServer at 127.0.0.1:{standin.grpc_port} (stand-in)" in log
    assert f"Exporting HTTP/REST API at 127.0.0.1:{standin.rest_port} (stand-in)" in log
    assert re.search(rf"loaded model tiny_v1 version 1 .* replayed {WARMUP_RECORDS} warm-up requests", log)
    assert re.search(r"loaded model digits version 2 .* replayed 0 warm-up requests", log)
    record = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")
    ours = [line for line in log.splitlines() if record.match(line)]
    assert ours and all("[tfserving stand-in]" in line for line in ours)
