"""The conv zoo's names, versions and tensor signatures (digits, resnet18), framework-free.

The models themselves are spec files (models/zoo/<name>.py) and their registrations (models/registry.py) are what
serving reads; this list is for readers that import neither torch nor the artifacts (deploy/, the routes, the
tests of both). tests/models/test_export.py checks it against the exported registrations.
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
