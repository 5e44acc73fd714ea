"""torch -> ONNX -> TF SavedModel with onnx2tf; runs INSIDE .venv-convert (requirements/convert.txt), not the main venv.

    .venv-convert/bin/python models/onnx_convert.py --spec S --weights W --inputs I.npz --outputs a,b --out DIR

Why this converter (measured on this machine kind, docs in ../shared/notes/converters-here.md and the README):
onnx2tf 1.29.24 turned the zoo's ResNet-18 into a SavedModel with max |Δ| 7.8e-8 to torch, and a depthwise/BN/
residual conv net here with 7.5e-8, while nobuco cannot import under Keras 3. It pins TF 2.19 and numpy 1.26,
which the main venv (TF 2.20, numpy 2.4) cannot hold, hence its own venv; the main venv then loads the result in
TF 2.20 and saves it again under our signature (models/tfexport.py). `keep_shape_absolutely_input_names` keeps
torch's NCHW at the boundary (onnx2tf would otherwise hand TF Serving NHWC inputs).
It fails on a transformer encoder with a padding mask; such specs define build_keras() (weight port) instead.

Self-contained: imports only the standard library, numpy, torch, onnx and onnx2tf (none of twinserve).
On an op that cannot be converted it prints one line `UNSUPPORTED op=<op> layer=<module path>` and exits 3.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

EXIT_UNSUPPORTED = 3


def _load_model(spec_path: Path, weights: Path) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("twinserve_convert_spec", spec_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    model = (getattr(module, "architecture", None) or module.build)()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


class _Tee(io.TextIOBase):
    """Write to the real stdout and keep a copy (onnx2tf prints the failing node's name)."""

    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)


def _layer_of(model: torch.nn.Module, args: tuple[torch.Tensor, ...], op: str) -> str:
    """The module path whose forward calls `op` (e.g. aten::fft_rfft), from the traced graph's scopes."""
    try:
        graph = torch.jit.trace(model, args, check_trace=False).inlined_graph
    except Exception:  # best effort: the op name alone still helps
        return "?"
    for node in graph.nodes():
        if node.kind() == op:
            scope = node.scopeName().split("/")[-1].replace("__module.", "")
            return scope or "<root>"
    return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, required=True, help="npz of example inputs, in forward's order")
    parser.add_argument("--outputs", required=True, help="comma-separated output names")
    parser.add_argument("--dynamic", default="", help="input:dim,... dynamic dimensions besides the batch")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    model = _load_model(args.spec, args.weights)
    with np.load(args.inputs) as npz:
        names = list(npz.files)
        tensors = tuple(torch.from_numpy(npz[n]) for n in names)
    outputs = args.outputs.split(",")
    axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in [*names, *outputs]}
    for item in filter(None, args.dynamic.split(",")):
        name, dim = item.rsplit(":", 1)
        axes[name][int(dim)] = f"{name}_{dim}"
    onnx_path = args.out.with_suffix(".onnx")
    started = time.perf_counter()
    try:
        torch.onnx.export(
            model, tensors, str(onnx_path), dynamo=False, opset_version=17,
            input_names=names, output_names=outputs, dynamic_axes=axes,
        )  # fmt: skip
    except Exception as exc:
        found = re.search(r"operator '([\w:.]+)'", str(exc))
        if found:
            print(f"UNSUPPORTED op={found.group(1)} layer={_layer_of(model, tensors, found.group(1))} stage=onnx")
            return EXIT_UNSUPPORTED
        raise
    print(f"onnx: {time.perf_counter() - started:.1f} s", flush=True)
    import onnx
    import onnx2tf

    started = time.perf_counter()
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(_Tee(sys.stdout, log)):
            onnx2tf.convert(
                input_onnx_file_path=str(onnx_path),
                output_folder_path=str(args.out),
                output_signaturedefs=True,
                keep_shape_absolutely_input_names=names,
                non_verbose=True,
            )
    except (Exception, SystemExit) as exc:  # onnx2tf calls sys.exit(1) after logging some failures
        # onnx2tf logs the failing ONNX node as "onnx_op_name: wa/blocks.0/Add" ('/' -> 'wa/'); torch names
        # ONNX nodes after the module path, so the node's name leads back to the torch layer.
        names_logged = re.findall(r"onnx_op_name: (\S+)", log.getvalue())
        wanted = {names_logged[-1], "/" + names_logged[-1].removeprefix("wa/")} if names_logged else set()
        node = next((n for n in onnx.load(str(onnx_path)).graph.node if n.name in wanted), None)
        reason = next((ln.strip() for ln in str(exc).splitlines() if "must" in ln or "not supported" in ln), "")
        reason = reason or f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        if node is not None:
            layer = "/".join(node.name.strip("/").split("/")[:-1]) or "<root>"
            print(f"UNSUPPORTED op={node.op_type} layer={layer} stage=onnx2tf node={node.name} ({reason[:300]})")
        else:
            print(f"UNSUPPORTED op=? layer=? stage=onnx2tf ({reason[:300]})")
        return EXIT_UNSUPPORTED
    if not (args.out / "saved_model.pb").is_file():
        print(f"UNSUPPORTED op=? layer=? stage=onnx2tf (no saved_model.pb in {args.out}: see the log above)")
        return EXIT_UNSUPPORTED
    print(f"onnx2tf: {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
