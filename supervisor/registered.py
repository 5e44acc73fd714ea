"""Registered models (models/registry.py) on the native stack: their sample request bodies for readiness checks."""

from __future__ import annotations

import json
from pathlib import Path

from models import registry
from supervisor.errors import PreflightError
from supervisor.layout import Layout


def write_samples(layout: Layout) -> list[Path]:
    """Write `<run>/samples/<model>.json` ({"instances": [...]}, valid on both stacks) for every registered model
    without an exported sample, from the batch-1 inputs of its reference.npz; return the files written."""
    import numpy as np  # only `up` needs it, not `status` or `down`

    try:
        models = registry.load_all(layout.registry_root)
    except ValueError as error:  # a broken registration names its file
        raise PreflightError(str(error)) from None
    written = []
    for model in models.values():
        if (layout.artifacts / "samples" / f"{model.name}.json").is_file():
            continue
        reference = layout.registry_root / model.reference
        if not reference.is_file():
            raise PreflightError(f"{model.name}: reference inputs {reference} are missing; run `make export`")
        with np.load(reference) as data:
            columns = {t.name: data[f"b1/in/{t.name}"].tolist() for t in model.inputs}
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
        if len(columns) == 1:  # TF Serving's row format: bare values for a one-input signature
            rows = next(iter(columns.values()))
        path = layout.run_dir / "samples" / f"{model.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"instances": rows}))
        written.append(path)
    return written
