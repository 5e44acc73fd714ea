"""The Dockerfiles: pinned bases whose versions agree with the Python pins, non-root users, no secrets in images,
a build context that holds what they COPY and nothing it must not."""

from __future__ import annotations

import re
from typing import Any

import pytest

from loadtest.ui import launch
from tests.deploy import checks
from tests.deploy.checks import Instruction, parse_dockerfile
from tests.deploy.conftest import DOCKERFILES, REPO

KEY_UID = 10001
SENSITIVE = [
    "run/torchserve/key_file.json",
    "run/state.json",
    "gateway/key_file.json",
    "key_file.json",
    ".venv/bin/python",
    "artifacts/torchserve/digits.mar",
    "artifacts/tfserving/digits/1/saved_model.pb",
    "results/run-1/report.html",
    "gateway/__pycache__/app.cpython-311.pyc",
    "loadtest/.ruff_cache/CACHEDIR.TAG",
    ".git/config",
    "models/export.py",
    "tests/deploy/checks.py",
]


def pins(path: str) -> dict[str, str]:
    """name (lower case, extras dropped) -> pinned version of a requirements/constraints file."""
    out = {}
    for raw in (REPO / path).read_text().splitlines():
        line = raw.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")] = version.strip()
    return out


def test_every_base_image_is_pinned(dockerfiles: dict[str, list[Instruction]]) -> None:
    for name, instructions in dockerfiles.items():
        images = checks.base_images(instructions)
        assert images, name
        for image in images:
            assert checks.image_problems(image) == [], (name, image)


def test_an_unpinned_base_is_caught() -> None:
    bad = parse_dockerfile("ARG BASE_IMAGE=pytorch/torchserve\nFROM ${BASE_IMAGE}\nFROM python:latest AS x\n")
    images = checks.base_images(bad)
    assert images == ["pytorch/torchserve", "python:latest"]
    assert [p for i in images for p in checks.image_problems(i)] == [
        "image 'pytorch/torchserve' has no tag",
        "image 'python:latest' is tagged latest",
    ]


def test_base_versions_agree_with_the_python_pins(dockerfiles: dict[str, list[Instruction]]) -> None:
    dev = pins("requirements/dev.txt")
    tf = checks.base_images(dockerfiles["tfserving"])
    assert dev["torch-model-archiver"] == dev["torchserve"]  # the .mar format matches the server
    assert tf == [f"tensorflow/serving:{dev['tensorflow']}-gpu"]
    assert dev["tensorflow-serving-api"] == dev["tensorflow"]  # SavedModels exported by the same TF release
    ours = ("gateway", "loadtest", "torchserve", "tfserving-standin")
    python = {i for n in ours for i in checks.base_images(dockerfiles[n])}
    assert len(python) == 1, python  # every stage of every image we build: one interpreter
    (image,) = python
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), image  # pyproject: >=3.11,<3.12


@pytest.mark.parametrize("path", ["serving/torchserve/requirements.txt", "serving/tfserving/standin/requirements.txt"])
def test_server_image_requirements_agree_with_the_dev_pins(path: str) -> None:
    image = pins(path)
    dev = pins("requirements/dev.txt")
    constraints = pins("requirements/constraints.txt")
    for name, version in image.items():
        # constraints pin the local CPU torch (2.13.0+cpu); the image's torch variant is a build argument
        assert constraints.get(name, dev.get(name, version)).split("+")[0] == version, name
    if "torch" in image:
        assert image["torch"] == dev["torch"] and image["torchserve"] == dev["torchserve"]  # the exporter's torch
    else:
        assert image["tensorflow"] == dev["tensorflow"] and "torch" not in image


def test_torchserve_image_builds_both_torch_variants_from_one_dockerfile(
    dockerfiles: dict[str, list[Instruction]], default_cfg: Any, cpu_cfg: Any
) -> None:
    text = DOCKERFILES["torchserve"].read_text()
    assert "cuda)" in text and "cpu)" in text and "https://download.pytorch.org/whl/cpu" in text
    assert "openjdk-17-jre-headless" in text  # TorchServe's frontend
    assert default_cfg["services"]["torchserve"]["build"]["args"]["TORCH_VARIANT"] == "cuda"
    assert cpu_cfg["services"]["torchserve"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    for cfg in (default_cfg, cpu_cfg):
        args = cfg["services"]["torchserve"]["build"]["args"]
        assert args["PYTHON_BASE"] == "python:3.11.7-slim-bookworm" and args["WHEELS"] == "scratch"  # users' defaults


def test_every_image_runs_as_a_non_root_user(dockerfiles: dict[str, list[Instruction]]) -> None:
    for name, instructions in dockerfiles.items():
        assert checks.root_problems(name, instructions) == []
    assert checks.final_user(dockerfiles["torchserve"]) == "model-server"


def test_root_images_are_caught() -> None:
    assert checks.root_problems("x", parse_dockerfile("FROM a:1\nUSER app\nFROM b:1\nRUN true\n")) == [
        "x: no USER in the final stage (the base image's user, often root)"
    ]
    assert checks.root_problems("x", parse_dockerfile("FROM a:1\nUSER app\nUSER root\n")) == ["x: runs as root"]


def test_key_readers_share_torchserves_uid(dockerfiles: dict[str, list[Instruction]], default_cfg: Any) -> None:
    text = {n: " ".join(i.args for i in ins if i.keyword == "RUN") for n, ins in dockerfiles.items()}
    assert f"useradd --uid {KEY_UID} --gid {KEY_UID}" in text["torchserve"]
    for name in ("gateway", "loadtest"):
        assert f"useradd --uid {KEY_UID} --gid {KEY_UID}" in text[name], name
        assert checks.final_user(dockerfiles[name]) == "twinserve"
    opts = default_cfg["volumes"]["torchserve-keys"]["driver_opts"]
    assert opts["type"] == "tmpfs"
    assert f"uid={KEY_UID}" in opts["o"].split(",") and "mode=0700" in opts["o"].split(",")


def test_no_image_bakes_in_secrets_or_run_state(dockerfiles: dict[str, list[Instruction]]) -> None:
    for name, instructions in dockerfiles.items():
        assert checks.secret_copy_problems(name, checks.context_copies(instructions)) == []
        assert "disable-token-auth" not in DOCKERFILES[name].read_text()


def test_secret_copies_are_caught() -> None:
    bad = parse_dockerfile(
        "FROM a:1\nCOPY run/torchserve/key_file.json /k/\nCOPY artifacts/torchserve /store\nCOPY . /app\n"
        "ADD https://example.invalid/x.tar /x\nCOPY --from=build /opt/venv /opt/venv\n"
    )
    problems = checks.secret_copy_problems("bad", checks.context_copies(bad))
    assert len(problems) == 4, problems


def test_dockerignore_keeps_secrets_state_and_artifacts_out() -> None:
    rules = checks.dockerignore_rules((REPO / ".dockerignore").read_text())
    leaked = [p for p in SENSITIVE if not checks.excluded(p, rules)]
    assert leaked == []
    # and what a Dockerfile needs gets in
    for path in (
        "gateway/app.py",
        "loadtest/locustfile.py",
        "loadtest/ui/locustfile.py",
        "loadtest/ui/static/twinserve.js",
        "requirements/gateway.txt",
        "serving/torchserve/config.properties",
        "deploy/torchserve/ts_keys.py",
    ):
        assert not checks.excluded(path, rules), path


def test_dockerignore_evaluation_can_fail() -> None:
    permissive = checks.dockerignore_rules("*\n!gateway/\n")
    assert not checks.excluded("gateway/key_file.json", permissive)  # what the real file's re-exclusion prevents
    assert checks.excluded("run/torchserve/key_file.json", permissive)
    assert not checks.excluded("run/x", checks.dockerignore_rules("artifacts\n"))


def test_real_context_holds_no_secret() -> None:
    rules = checks.dockerignore_rules((REPO / ".dockerignore").read_text())
    sent = checks.context_files(REPO, rules)
    assert sent, "empty build context"
    bad = [
        f for f in sent if f.endswith("key_file.json") or f.split("/")[0] in ("run", "artifacts", ".venv", "results")
    ]
    assert bad == []
    assert not any(f.endswith((".pyc", ".mar")) or "/__pycache__/" in f for f in sent)


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_copy_source_is_in_the_build_context(name: str, dockerfiles: dict[str, list[Instruction]]) -> None:
    rules = checks.dockerignore_rules((REPO / ".dockerignore").read_text())
    assert checks.copy_sources_missing(checks.context_copies(dockerfiles[name]), REPO, rules) == []


def test_a_copy_source_left_out_of_the_context_is_caught() -> None:
    rules = checks.dockerignore_rules("*\n!gateway/\n")
    copies = checks.context_copies(parse_dockerfile("FROM a:1\nCOPY requirements/gateway.txt gateway/ /x/\n"))
    assert checks.copy_sources_missing(copies, REPO, rules) == [
        "COPY requirements/gateway.txt: excluded from the build context by .dockerignore"
    ]


def test_gateway_image_installs_only_the_slim_gateway_requirements(dockerfiles: dict[str, list[Instruction]]) -> None:
    runs = " ".join(i.args for i in dockerfiles["gateway"] if i.keyword == "RUN")
    assert "-r /tmp/requirements/gateway.txt -c /tmp/requirements/constraints.txt" in runs
    heavy = {"torch", "tensorflow", "tensorflow-serving-api", "keras", "torchserve"}
    assert heavy.isdisjoint(pins("requirements/gateway.txt"))
    entry = next(i for i in dockerfiles["gateway"] if i.keyword == "ENTRYPOINT").exec_form()
    assert entry == ["python", "-m", "gateway"]
    assert "uvicorn[standard]" in (REPO / "requirements/gateway.txt").read_text()  # uvloop + httptools


def test_loadtest_requirements_agree_with_the_dev_pins() -> None:
    image = pins("deploy/loadtest/requirements.txt")
    constraints = pins("requirements/constraints.txt")
    dev = pins("requirements/dev.txt")
    for name, version in image.items():
        assert constraints.get(name, dev.get(name, version)) == version, name
    assert image["locust"] == "2.47.0"
    assert {"torch", "tensorflow", "tensorflow-serving-api"}.isdisjoint(image)


def test_entry_points_and_exposed_ports(dockerfiles: dict[str, list[Instruction]], default_cfg: Any) -> None:
    exposed = {
        n: {int(p) for i in ins if i.keyword == "EXPOSE" for p in i.args.split()} for n, ins in dockerfiles.items()
    }
    services = default_cfg["services"]
    for name in ("torchserve", "tfserving", "gateway"):
        assert exposed[name] == set(checks.published_ports(services[name])), name
    assert exposed["tfserving-standin"] == exposed["tfserving"]
    assert exposed["loadtest"] == {8089, 5557} == {launch.WEB_PORT, launch.MASTER_PORT}
    loadtest = next(i for i in dockerfiles["loadtest"] if i.keyword == "ENTRYPOINT").exec_form()
    assert loadtest == ["locust", "-f", launch.IMAGE_LOCUSTFILE]  # the web UI's, for the Locust operator
    assert (REPO / launch.IMAGE_LOCUSTFILE).resolve() == launch.LOCUSTFILE.resolve()
    assert [i.args for i in dockerfiles["loadtest"] if i.keyword == "WORKDIR"] == [launch.WORKDIR]
