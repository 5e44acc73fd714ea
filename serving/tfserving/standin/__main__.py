"""`python -m serving.tfserving.standin --port <gRPC port> --rest_api_port <REST port> --model_config_file ...`"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from serving.tfserving.standin.config import (
    load_batching_options,
    load_model_configs,
    load_prometheus_path,
    parse_flags,
)
from serving.tfserving.standin.errors import ConfigError

log = logging.getLogger("twinserve.tfserving.standin")


class _StartupStoppedError(Exception):
    """SIGTERM or SIGINT arrived while the models were still loading."""


def _stop_startup(signum: int, _frame: object) -> None:
    raise _StartupStoppedError(signal.Signals(signum).name)


class _OneLineFormatter(logging.Formatter):
    """Keeps every record (tracebacks included) on one line, so each log line is one event."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def main(argv: Sequence[str] | None = None) -> int:
    """Load the models and serve until SIGTERM/SIGINT; return 0 after a clean stop, 1 on a bad setup."""
    flags = parse_flags(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s [tfserving stand-in] %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # Until the servers' own handlers take over, a stop request ends start-up cleanly and says so.
    signal.signal(signal.SIGTERM, _stop_startup)
    signal.signal(signal.SIGINT, _stop_startup)
    try:
        configs = load_model_configs(flags.model_config_file, flags.model_base_path_root)
        prometheus_path = load_prometheus_path(flags.monitoring_config_file)
        batching = load_batching_options(flags.batching_parameters_file) if flags.enable_batching else None
        # Set before TensorFlow is first imported: its C++ start-up chatter would break the one-line records.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from serving.tfserving.standin import server  # imports TensorFlow, so only once the configs are good

        manager = server.load(configs, batching)
        asyncio.run(server.serve(flags, manager, prometheus_path))
    except ConfigError as e:
        log.error("cannot start: %s", e)
        return 1
    except _StartupStoppedError as e:
        log.info("received %s during start-up: stopped before serving", e)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
