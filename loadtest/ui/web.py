"""twinserve's additions to Locust's web UI, through its documented extension points.

- `/swarm` is checked first: the twinserve fields (clear messages shown in the form), at least one target ticked
  and every ticked target reachable; then the user count and ramp-up are set to one user per ticked target.
- a "twinserve" tab (extended tab + table) lists the last saved run's verdict per target; "Download Data" links
  to its report.html and summary.json; `/twinserve/status` is the same as JSON.
- a small script preselects the default target, opens the custom parameters and says what Users/Ramp up mean.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Response, jsonify, request, send_file

from loadtest.ui import fields
from loadtest.ui.catalog import Catalog
from loadtest.ui.session import UISession

STATIC = Path(__file__).with_name("static")
TAB = "twinserve"
COLUMNS = [
    ("target", "Target"),
    ("result", "Result"),
    ("rps", "Correct req/s"),
    ("p50", "p50 ms"),
    ("p99", "p99 ms"),
    ("why", "Why"),
]


def _fail(message: str) -> Response:
    return jsonify({"success": False, "message": message, "host": ""})


def rows(session: UISession) -> list[dict[str, Any]]:
    """The twinserve tab's table: where the last run was saved, then one row per target."""
    if session.last_error:
        return [{"target": "last run", "result": "not saved", "why": session.last_error}]
    if session.last_summary is None or session.last_dir is None:
        return [{"target": "no run saved yet", "why": "a run is saved here when it ends or is stopped"}]
    out: list[dict[str, Any]] = [
        {
            "target": "saved run",
            "result": str(session.last_dir),
            "why": "report: Download Data tab, or ./twinserve/report",
        }
    ]
    names = {t.id: session.catalog.label_of(t) for t in session.catalog.targets}
    for p in session.last_summary["points"]:
        lat = p["latency_ms"]["from_schedule"]
        result = p.get("outcome", {}).get("result") if p.get("outcome") else None
        out.append(
            {
                "target": names.get(p["target"]["id"], p["target"]["id"]),
                "result": ("VALID" if p["valid"] else "INVALID") + (f", {result}" if result else ""),
                "rps": round(p["achieved_rps"], 1),
                "p50": None if lat["p50"] is None else round(lat["p50"], 2),
                "p99": None if lat["p99"] is None else round(lat["p99"], 2),
                "why": "; ".join(dict.fromkeys([w for w in [(p.get("outcome") or {}).get("why"), *p["reasons"]] if w])),
            }
        )
    return out


def install(environment: Any, session: UISession, catalog: Catalog) -> None:
    """Hook the checks, the tab, the links and the script into Locust's web UI (master or single process)."""
    web_ui = environment.web_ui
    app = web_ui.app
    classes = {
        catalog.label_of(t): cls
        for t in catalog.targets
        if (cls := environment.available_user_classes.get(catalog.label_of(t)))
    }
    web_ui.template_args.update(
        extended_tabs=[{"title": TAB, "key": TAB}],
        extended_tables=[{"key": TAB, "structure": [{"key": k, "title": v} for k, v in COLUMNS]}],
        extended_csv_files=[
            {"href": "./twinserve/report", "title": "twinserve: report.html of the last UI run"},
            {"href": "./twinserve/summary.json", "title": "twinserve: summary.json of the last UI run"},
        ],
    )
    plain_update = web_ui.update_template_args

    def update_template_args() -> None:
        plain_update()
        # Each class names its own target; Locust's host field and its warnings do not apply.
        web_ui.template_args.update(override_host_warning=False, missing_host_warning=False, host="")

    web_ui.update_template_args = update_template_args

    @app.before_request
    def _before() -> Response | None:
        if request.method != "POST":
            return None
        if request.path.endswith("/user"):
            return _fail("Per-class settings are fixed in twinserve: one user per ticked target")
        if not request.path.endswith("/swarm"):
            return None
        if environment.runner is not None and environment.runner.state in ("spawning", "running"):
            return _fail("A twinserve run cannot be edited while it runs: Stop it, then start a new one")
        problems, ticked = fields.check_start(request.form, classes)
        if problems:
            return _fail(". ".join(problems))
        users = str(sum(max(1, int(getattr(classes[n], "fixed_count", 1) or 1)) for n in ticked))
        form = request.form.copy()
        form.setlist("user_count", [users])
        form.setlist("spawn_rate", [users])  # all at once: each user's schedule starts when it spawns
        form.poplist("host")
        request.form = form  # type: ignore[misc,assignment]  # werkzeug's cached property takes the replacement
        return None

    @app.after_request
    def _after(resp: Response) -> Response:
        path = request.path.rstrip("/")
        if path.endswith("/stats/requests") and resp.is_json:
            data = resp.get_json()
            data["extended_stats"] = [{"key": TAB, "data": rows(session)}]
            resp.set_data(json.dumps(data))
        elif request.method == "GET" and resp.mimetype == "text/html" and request.path in ("/", ""):
            default = catalog.label_of(catalog.default)
            script = (
                f"<script>window.twinserveUi = {json.dumps({'default': default})};</script>"
                '<script src="./twinserve/ui.js"></script></body>'
            )
            resp.set_data(resp.get_data(as_text=True).replace("</body>", script, 1))
        return resp

    @app.route("/twinserve/ui.js")
    def _script() -> Response:
        return send_file(STATIC / "twinserve.js", mimetype="application/javascript", max_age=0)

    @app.route("/twinserve/status")
    def _status() -> Response:
        return jsonify(
            {
                "run_dir": str(session.last_dir) if session.last_dir else None,
                "error": session.last_error,
                "rows": rows(session),
                "targets": {catalog.label_of(t): t.id for t in catalog.targets},
                "default": catalog.label_of(catalog.default),
            }
        )

    @app.route("/twinserve/report")
    def _report() -> Response:
        return _last(session, "report.html", "text/html")

    @app.route("/twinserve/summary.json")
    def _summary() -> Response:
        return _last(session, "summary.json", "application/json")


def _last(session: UISession, name: str, mimetype: str) -> Response:
    if session.last_dir is None or not (session.last_dir / name).is_file():
        return Response("No twinserve UI run saved yet: start one, it is saved when it ends or is stopped.", 404)
    return send_file((session.last_dir / name).resolve(), mimetype=mimetype, max_age=0)
