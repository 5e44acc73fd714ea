"""`python -m loadtest.report SUMMARY.json` re-renders; `--synthetic DIR` writes a demo; `--schema`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loadtest.report import write_report
from loadtest.report.schema import Summary
from loadtest.report.synthetic import synthetic_summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m loadtest.report", description=__doc__)
    ap.add_argument("summary", nargs="?", type=Path, help="summary.json to render next to itself")
    ap.add_argument("--synthetic", type=Path, metavar="DIR", help="write a synthetic (clearly labelled) report")
    ap.add_argument("--real-tfserving", action="store_true", help="synthetic: pretend TF side is the real server")
    ap.add_argument("--schema", action="store_true", help="print the JSON Schema of summary.json")
    args = ap.parse_args(argv)
    if args.schema:
        print(json.dumps(Summary.model_json_schema(), indent=1))
    elif args.synthetic:
        paths = write_report(synthetic_summary(stand_in=not args.real_tfserving), args.synthetic)
        print(paths["html"])
    elif args.summary:
        summary = json.loads(args.summary.read_text(encoding="utf-8"))
        print(write_report(summary, args.summary.parent)["html"])
    else:
        ap.error("give a summary.json, --synthetic DIR or --schema")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
