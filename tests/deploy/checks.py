"""Checks of the deployment files, each returning the problems it finds (empty: fine).

They take plain data (a merged compose model as `docker compose config --format json` prints it, parsed
Dockerfiles, .dockerignore rules) so the tests can run them on the real files and on broken copies.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Compose = dict[str, Any]

# ---------------------------------------------------------------- images


def image_problems(ref: str) -> list[str]:
    """An image reference must carry an explicit tag other than `latest` (a digest alone counts as pinned)."""
    if "@sha256:" in ref:
        return []
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:  # `registry:5000/repo` has a colon but no tag
        return [f"image {ref!r} has no tag"]
    if tag == "latest":
        return [f"image {ref!r} is tagged latest"]
    return []


def unpinned_images(cfg: Compose) -> list[str]:
    """Every service names a pinned image, and so does every BASE_IMAGE build argument."""
    problems = []
    for name, svc in cfg["services"].items():
        if "image" not in svc:
            problems.append(f"{name}: no image")
            continue
        problems += [f"{name}: {p}" for p in image_problems(svc["image"])]
        base = (svc.get("build") or {}).get("args", {}).get("BASE_IMAGE")
        if base is not None:
            problems += [f"{name} build arg BASE_IMAGE: {p}" for p in image_problems(base)]
    return problems


# ---------------------------------------------------------------- service hygiene


def missing_healthchecks(cfg: Compose) -> list[str]:
    """Every service has an enabled healthcheck with a command."""
    problems = []
    for name, svc in cfg["services"].items():
        hc = svc.get("healthcheck") or {}
        if hc.get("disable") or not hc.get("test") or hc["test"][0] == "NONE":
            problems.append(f"{name}: no healthcheck")
    return problems


def bad_dependencies(cfg: Compose) -> list[str]:
    """Every dependency waits for the other service to be healthy, and only on services that have a healthcheck."""
    problems = []
    for name, svc in cfg["services"].items():
        for dep, how in (svc.get("depends_on") or {}).items():
            if how.get("condition") != "service_healthy":
                problems.append(f"{name} depends on {dep} with condition {how.get('condition')!r}")
            if dep not in cfg["services"]:
                problems.append(f"{name} depends on unknown service {dep}")
    return problems


def missing_restart_or_limits(cfg: Compose) -> list[str]:
    """Every service restarts by policy and has CPU and memory limits."""
    problems = []
    for name, svc in cfg["services"].items():
        if svc.get("restart") not in ("unless-stopped", "always", "on-failure"):
            problems.append(f"{name}: restart policy {svc.get('restart')!r}")
        limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        for key in ("cpus", "memory"):
            if not limits.get(key):
                problems.append(f"{name}: no {key} limit")
    return problems


def gpu_devices(cfg: Compose) -> dict[str, list[dict[str, Any]]]:
    """Service -> its reserved devices that ask for the `gpu` capability."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, svc in cfg["services"].items():
        reservations = ((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
        gpus = [d for d in reservations.get("devices") or [] if "gpu" in (d.get("capabilities") or [])]
        if gpus:
            found[name] = gpus
    return found


def writable_bind_mounts(cfg: Compose, repo: Path, under: str) -> list[str]:
    """Bind mounts of anything below `repo/under` (artifacts, deploy config) must be read-only."""
    problems = []
    root = (repo / under).resolve()
    for name, svc in cfg["services"].items():
        for vol in svc.get("volumes") or []:
            if (
                vol["type"] == "bind"
                and Path(vol["source"]).resolve().is_relative_to(root)
                and not vol.get("read_only")
            ):
                problems.append(f"{name}: {vol['source']} -> {vol['target']} is writable")
    return problems


def published_ports(svc: dict[str, Any]) -> dict[int, int]:
    """Container port -> published host port."""
    return {int(p["target"]): int(p["published"]) for p in svc.get("ports") or []}


def exposed_beyond_loopback(cfg: Compose) -> list[str]:
    """By default every port is published on 127.0.0.1 only."""
    return [
        f"{name}: port {p['target']} published on {p.get('host_ip') or 'every interface'}"
        for name, svc in cfg["services"].items()
        for p in svc.get("ports") or []
        if p.get("host_ip") != "127.0.0.1"
    ]


def mounts(svc: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The volume entries of `svc` whose source is `source` (a named volume or a resolved host path)."""
    return [v for v in svc.get("volumes") or [] if v.get("source") == source]


def token_problems(cfg: Compose, volume: str, ts_workdir: str) -> list[str]:
    """TorchServe writes its keys into its working directory on `volume`; every other user mounts it read-only."""
    problems = []
    services = cfg["services"]
    ts = mounts(services["torchserve"], volume)
    if [(m["target"], bool(m.get("read_only"))) for m in ts] != [(ts_workdir, False)]:
        problems.append(f"torchserve must mount {volume} writable at its working directory {ts_workdir}: {ts}")
    for name, svc in services.items():
        for m in mounts(svc, volume):
            if name != "torchserve" and not m.get("read_only"):
                problems.append(f"{name} mounts {volume} writable at {m['target']}")
        env = svc.get("environment") or {}
        for var in ("TS_DISABLE_TOKEN_AUTHORIZATION", "TS_ENABLE_MODEL_API"):
            if var in env:
                problems.append(f"{name} sets {var}={env[var]!r}")
        if "disable-token-auth" in json.dumps(svc):
            problems.append(f"{name} passes --disable-token-auth")
    gateway_key = (services["gateway"].get("environment") or {}).get("TWINSERVE_BACKENDS__TORCHSERVE__KEY_FILE")
    gw = [m["target"] for m in mounts(services["gateway"], volume)]
    if not gateway_key or str(Path(gateway_key).parent) not in gw:
        problems.append(f"gateway key file {gateway_key!r} is not on the {volume} mount {gw}")
    return problems


# ---------------------------------------------------------------- Dockerfiles


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword (upper case) and its argument text, continuations joined."""

    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT/CMD (or the shell words of a shell form)."""
        text = self.args.strip()
        return json.loads(text) if text.startswith("[") else shlex.split(text)


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions of a Dockerfile: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append(Instruction(keyword.upper(), args.strip()))
    return out


def base_images(instructions: list[Instruction]) -> list[str]:
    """The image of every FROM that is not an earlier stage, with `${ARG}` resolved from ARG defaults."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    images = []
    for ins in instructions:
        if ins.keyword == "ARG" and "=" in ins.args:
            key, value = ins.args.split("=", 1)
            args[key.strip()] = value.strip()
        if ins.keyword == "FROM":
            words = [w for w in ins.args.split() if not w.startswith("--")]
            image = re.sub(
                r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(str(m.group(1) or m.group(2)), m.group(0)), words[0]
            )
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2])
            # `scratch` is Docker's reserved empty image, never pulled.
            if image not in stages and image != "scratch":
                images.append(image)
    return images


def final_user(instructions: list[Instruction]) -> str | None:
    """The USER in force at the end of the last stage (None: the base image's)."""
    user = None
    for ins in instructions:
        if ins.keyword == "FROM":
            user = None
        elif ins.keyword == "USER":
            user = ins.args.split(":")[0].strip()
    return user


def root_problems(name: str, instructions: list[Instruction]) -> list[str]:
    """The final stage must switch to a non-root user."""
    user = final_user(instructions)
    if user is None:
        return [f"{name}: no USER in the final stage (the base image's user, often root)"]
    if user in ("root", "0"):
        return [f"{name}: runs as {user}"]
    return []


@dataclass(frozen=True)
class Copy:
    """A COPY/ADD from the build context: its sources and destination."""

    keyword: str
    sources: tuple[str, ...]
    dest: str


def context_copies(instructions: list[Instruction]) -> list[Copy]:
    """COPY/ADD instructions that read the build context (not `--from=` another stage)."""
    out = []
    for ins in instructions:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        words = shlex.split(ins.args)
        if any(w.startswith("--from") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        out.append(Copy(ins.keyword, tuple(paths[:-1]), paths[-1]))
    return out


def secret_copy_problems(name: str, copies: Iterable[Copy]) -> list[str]:
    """No image may take keys, run state, artifacts, venvs or results from the context, nor fetch URLs."""
    problems = []
    for c in copies:
        for src in c.sources:
            parts = Path(src).parts
            if src.startswith(("http://", "https://")):
                problems.append(f"{name}: {c.keyword} fetches {src}")
            elif "key_file.json" in src or any(p in ("run", "artifacts", ".venv", "results") for p in parts):
                problems.append(f"{name}: {c.keyword} {src} would bake run-time state or secrets into the image")
            elif src in (".", "./", "*"):
                problems.append(f"{name}: {c.keyword} {src} copies the whole context")
    return problems


# ---------------------------------------------------------------- .dockerignore


def dockerignore_rules(text: str) -> list[tuple[bool, str]]:
    """(is_exception, pattern) per rule, as Docker reads them (comments and blank lines skipped)."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        rules.append((negate, pattern.strip("/")))
    return rules


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    # Docker's patternmatcher: `**` any number of path elements, `*` and `?` within one element.
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            ch = pattern[i]
            out.append("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def excluded(path: str, rules: list[tuple[bool, str]]) -> bool:
    """Whether `path` (relative, '/'-separated) stays out of the build context: the last rule matching the path
    or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, pattern in rules:
        regex = _pattern_regex(pattern)
        if any(regex.match(c) for c in candidates):
            result = not negate
    return result


def _may_reinclude(folder: str, rules: list[tuple[bool, str]]) -> bool:
    # An excluded folder is still walked if an exception rule could bring back something below it.
    return any(neg and (p.startswith(folder + "/") or p.startswith(("*", "?")) or "/**" in p) for neg, p in rules)


def context_files(repo: Path, rules: list[tuple[bool, str]]) -> list[str]:
    """Files of the working tree that would be sent as the build context."""
    files = []
    for top, dirs, names in os.walk(repo):
        rel_top = Path(top).relative_to(repo).as_posix()
        prefix = "" if rel_top == "." else rel_top + "/"
        dirs[:] = [d for d in dirs if not excluded(prefix + d, rules) or _may_reinclude(prefix + d, rules)]
        files += [prefix + n for n in names if not excluded(prefix + n, rules)]
    return files


def copy_sources_missing(copies: Iterable[Copy], repo: Path, rules: list[tuple[bool, str]]) -> list[str]:
    """COPY sources that do not exist or that .dockerignore keeps out of the context (the build would fail)."""
    problems = []
    for c in copies:
        for src in c.sources:
            matches = [p for p in repo.glob(src.rstrip("/"))] if any(ch in src for ch in "*?[") else [repo / src]
            if not matches or not all(p.exists() for p in matches):
                problems.append(f"{c.keyword} {src}: not in the repository")
                continue
            for p in matches:
                files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
                kept = [f for f in files if not excluded(f.relative_to(repo).as_posix(), rules)]
                if not kept:
                    problems.append(f"{c.keyword} {src}: excluded from the build context by .dockerignore")
    return problems


# ---------------------------------------------------------------- text formats


def textproto_values(text: str, field: str) -> list[str]:
    """Every scalar value of `field` in a text-format protobuf (`field: 1`, `field { value: 1 }`, `field: "x"`)."""
    values = []
    for m in re.finditer(rf"\b{re.escape(field)}\s*(?::\s*(\"[^\"]*\"|[\w.]+)|\{{\s*value\s*:\s*([\w.]+)\s*\}})", text):
        raw = m.group(1) or m.group(2)
        values.append(raw.strip('"'))
    return values


def port_of(url_or_address: str) -> int:
    """The port of `http://host:port[/...]` or `host:port`."""
    return int(re.search(r":(\d+)(?:/|$)", url_or_address).group(1))  # type: ignore[union-attr]
