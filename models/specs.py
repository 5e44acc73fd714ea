"""The public signature of every served model: one definition both stacks and the gateway obey.

This module is framework-free (no torch, no tensorflow) so the gateway and the load tests may import it.
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT_NAME = "input"
OUTPUT_NAMES = ("logits", "probabilities")
DTYPE = "float32"


@dataclass(frozen=True)
class ModelSpec:
    """Name, version and tensor signature of one model, identical on TorchServe and TF Serving."""

    name: str
    version: int
    input_shape: tuple[int, ...]
    """Shape of one instance, without the batch dimension (NCHW layout on both stacks)."""
    num_classes: int
    description: str

    @property
    def input_name(self) -> str:
        return INPUT_NAME

    @property
    def output_names(self) -> tuple[str, ...]:
        return OUTPUT_NAMES

    @property
    def dtype(self) -> str:
        return DTYPE

    def batch_shape(self, batch: int) -> tuple[int, ...]:
        """Shape of a batch of `batch` instances."""
        return (batch, *self.input_shape)


SPECS: dict[str, ModelSpec] = {
    "digits": ModelSpec(
        name="digits",
        version=1,
        input_shape=(1, 8, 8),
        num_classes=10,
        description="small CNN trained on scikit-learn's bundled 8x8 digits",
    ),
    "resnet18": ModelSpec(
        name="resnet18",
        version=1,
        input_shape=(3, 224, 224),
        num_classes=1000,
        description="ResNet-18 with seeded random weights (compute-bound workload)",
    ),
}


def get_spec(name: str) -> ModelSpec:
    """Return the spec of `name`, or raise KeyError naming the known models."""
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(SPECS))}") from None
