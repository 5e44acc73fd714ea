"""What the app's lifespan leaves behind once start-up is over."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient
from gateway_harness import FaultBackend

from gateway.app import create_app
from gateway.settings import Settings


def test_start_up_objects_are_frozen_out_of_the_collector(backends: dict[str, FaultBackend]) -> None:
    gc.unfreeze()
    try:
        with TestClient(create_app(Settings(), backends=backends)) as client:
            assert client.get("/v2/health/live").status_code == 200
            frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the app, FastAPI, pydantic and grpc modules: tens of thousands of objects
    finally:
        gc.unfreeze()
