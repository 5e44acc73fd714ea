"""Errors with a status, defined once and mapped once to HTTP and once to gRPC, as TF Serving maps them."""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """A failed request: `code` is the gRPC status, `http_status` what the REST API answers."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    http_status: int = 500

    @property
    def message(self) -> str:
        """The message sent to the client, as `{"error": message}` on REST and the gRPC details."""
        return str(self.args[0]) if self.args else self.code.name


class InvalidArgumentError(ServingError):
    """The client sent something the model cannot take (shape, dtype, JSON, signature name, ...)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = 400


class NotFoundError(ServingError):
    """Unknown model or version."""

    code = grpc.StatusCode.NOT_FOUND
    http_status = 404


class UnimplementedError(ServingError):
    """A real TF Serving API that this stand-in does not implement."""

    code = grpc.StatusCode.UNIMPLEMENTED
    http_status = 501


class PayloadTooLargeError(ServingError):
    """A body or message above MAX_MESSAGE_BYTES (gRPC answers RESOURCE_EXHAUSTED for its own limit too)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = 413


class UnavailableError(ServingError):
    """The server is overloaded (batch queue full) or shutting down; the client may retry."""

    code = grpc.StatusCode.UNAVAILABLE
    http_status = 503


class ConfigError(Exception):
    """A flag, config file or model directory the stand-in cannot start with."""
