"""The supervisor's errors: each carries a message fit to print as is, and the CLI maps them to exit codes."""

from __future__ import annotations


class SupervisorError(Exception):
    """Base of every error the supervisor reports to its user (CLI exit status 1)."""


class PreflightError(SupervisorError):
    """Something needed before starting is missing or wrong (artifacts, config files, run directory)."""


class PortBusyError(PreflightError):
    """A port a service would bind is already taken; the message names the port and its holder."""


class ConfigError(PreflightError):
    """A generated server configuration would break an invariant (token auth off, model API on)."""


class ReadinessError(SupervisorError):
    """A service died or did not become ready in time; the message names its log and quotes its tail."""


class KeyFileError(SupervisorError):
    """TorchServe's key file is missing or lacks the key asked for, or the token API refused a refresh."""
