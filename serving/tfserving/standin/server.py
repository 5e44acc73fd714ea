"""Load the models, run the gRPC and REST servers until SIGTERM/SIGINT, then drain and stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

import tensorflow as tf
from aiohttp import web

from serving.tfserving.standin import STANDIN_NOTICE
from serving.tfserving.standin.config import BatchingOptions, Flags, ModelConfig
from serving.tfserving.standin.errors import ConfigError
from serving.tfserving.standin.grpc_service import create_server
from serving.tfserving.standin.manager import ModelManager
from serving.tfserving.standin.metrics import Metrics
from serving.tfserving.standin.rest import create_app

log = logging.getLogger("twinserve.tfserving.standin")

DRAIN_SECONDS = 30.0
"""How long in-flight requests may take to finish after SIGTERM before the servers close anyway."""


def load(configs: Sequence[ModelConfig], batching: BatchingOptions | None) -> ModelManager:
    """Log the stand-in banner and load every model version (blocking); ConfigError says what is wrong."""
    log.info("%s; tensorflow %s", STANDIN_NOTICE, tf.__version__)
    log.info("batching: %s", batching or "disabled (--enable_batching not given)")
    return ModelManager.load(configs, Metrics(), batching)


async def serve(flags: Flags, manager: ModelManager, prometheus_path: str | None) -> None:
    """Serve until SIGTERM or SIGINT, then stop taking requests, finish those in flight and return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await manager.start()
    grpc_server = create_server(manager)
    runner = web.AppRunner(create_app(manager, prometheus_path), access_log=None)
    try:
        try:
            grpc_server.add_insecure_port(f"{flags.host}:{flags.port}")
        except RuntimeError as e:
            raise ConfigError(f"cannot bind gRPC to {flags.host}:{flags.port}: {e}") from e
        await grpc_server.start()
        await runner.setup()
        site = web.TCPSite(runner, flags.rest_api_host, flags.rest_api_port, shutdown_timeout=DRAIN_SECONDS)
        try:
            await site.start()
        except OSError as e:
            raise ConfigError(f"cannot bind REST to {flags.rest_api_host}:{flags.rest_api_port}: {e}") from e
        log.info("Running gRPC ModelServer at %s:%d (stand-in)", flags.host, flags.port)
        log.info("Exporting HTTP/REST API at %s:%d (stand-in)", flags.rest_api_host, flags.rest_api_port)
        if prometheus_path:
            log.info(
                "Prometheus metrics at http://%s:%d%s",
                flags.rest_api_host,
                flags.rest_api_port,
                prometheus_path,
            )
        log.info("stand-in ready: serving %s", ", ".join(manager.describe()))
        await stop.wait()
        log.info("received %s: draining in-flight requests (up to %.0f s)", received[0], DRAIN_SECONDS)
    finally:
        await asyncio.gather(grpc_server.stop(DRAIN_SECONDS), runner.cleanup())
        await manager.close()
    log.info("stand-in stopped")
