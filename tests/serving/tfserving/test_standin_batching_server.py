"""--enable_batching on a real stand-in process: concurrent requests coalesce; SIGTERM drains in-flight work.

The SIGTERM test stops this module's server, so it runs last here.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from standin_support import StandIn, digits_batch, expected_logits, http, sample, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

BATCH_SIZE = "twinserve_tfserving_standin_batch_size"
PADDING = "twinserve_tfserving_standin_batch_padding_rows_total"


def predict_rows(standin: StandIn, x: np.ndarray) -> np.ndarray:
    status, body = http("POST", f"{standin.rest}/v1/models/digits:predict", {"inputs": x.tolist()})
    assert status == 200, body
    return np.array(body["outputs"]["logits"])


def concurrently(standin: StandIn, inputs: list[np.ndarray]) -> list[np.ndarray]:
    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(lambda x: predict_rows(standin, x), inputs))


def test_concurrent_requests_are_coalesced_and_each_gets_its_own_answer(batching_standin: StandIn) -> None:
    before = scrape(batching_standin)
    inputs = [digits_batch(1, seed=i) for i in range(8)]
    for x, logits in zip(inputs, concurrently(batching_standin, inputs), strict=True):
        np.testing.assert_allclose(logits, expected_logits(2, x), rtol=1e-4, atol=1e-4)
    after = scrape(batching_standin)
    batches = sample(after, f"{BATCH_SIZE}_count", model_name="digits") - sample(
        before, f"{BATCH_SIZE}_count", model_name="digits"
    )
    rows = sample(after, f"{BATCH_SIZE}_sum", model_name="digits") - sample(
        before, f"{BATCH_SIZE}_sum", model_name="digits"
    )
    assert rows == 8
    assert 1 <= batches < 8  # at least two requests shared a batch


def test_small_batches_are_padded_to_an_allowed_size(batching_standin: StandIn) -> None:
    before = sample(scrape(batching_standin), PADDING, model_name="digits")
    inputs = [digits_batch(1, seed=10 + i) for i in range(3)]
    for x, logits in zip(inputs, concurrently(batching_standin, inputs), strict=True):
        np.testing.assert_allclose(logits, expected_logits(2, x), rtol=1e-4, atol=1e-4)
    # allowed_batch_sizes are 4 and 8: three rows, together or apart, always need padding.
    assert sample(scrape(batching_standin), PADDING, model_name="digits") - before >= 1


def test_a_request_above_max_batch_size_is_refused(batching_standin: StandIn) -> None:
    status, body = http(
        "POST", f"{batching_standin.rest}/v1/models/digits:predict", {"inputs": digits_batch(9).tolist()}
    )
    assert status == 400
    assert "Task size 9 is larger than maximum input batch size 8" in body["error"]


def test_sigterm_lets_in_flight_requests_finish_then_exits_cleanly(batching_standin: StandIn) -> None:
    x = digits_batch(1, seed=99)
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(predict_rows, batching_standin, x)  # waits up to 2 s for company
        time.sleep(1.0)  # it has arrived (a loaded box's margin) and still waits in its batch when SIGTERM comes
        batching_standin.process.send_signal(signal.SIGTERM)
        np.testing.assert_allclose(in_flight.result(timeout=30), expected_logits(2, x), rtol=1e-4, atol=1e-4)
    assert batching_standin.process.wait(timeout=60) == 0
    log = batching_standin.log()
    assert "received SIGTERM: draining in-flight requests" in log
    assert log.rstrip().endswith("stand-in stopped")
