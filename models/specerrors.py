"""What add-model can fail with: each error's message says what is wrong and what to do."""

from __future__ import annotations


class ExportError(Exception):
    """add-model or remove-model cannot go on; the message says why and what to do."""


class CollisionError(ExportError):
    """The name is already taken by a built-in or a registered model."""


class UnsupportedOpError(ExportError):
    """The converter cannot handle an op; the message names the op and the layer."""


class ParityError(ExportError):
    """The two exported artifacts disagree beyond the tolerance; the message gives max |Δ| and the worst input."""
