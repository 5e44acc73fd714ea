"""The batching knobs agree across stacks where the servers allow it, and every report states where they cannot."""

from __future__ import annotations

from pathlib import Path

from loadtest import environment
from loadtest.knobs import DIFFERENCES, compare, disagreements, tfserving_knobs, torchserve_knobs
from loadtest.report.html import _environment

PROPS = "job_queue_size=128\n"
TS_YAML = "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 32\nmaxBatchDelay: 2\n"
TF_TEXT = (
    "max_batch_size { value: 32 }\nbatch_timeout_micros { value: 2000 }\nnum_batch_threads { value: 1 }\n"
    "max_enqueued_batches { value: 4 }\n"
)


def test_the_repository_configs_agree_for_every_model() -> None:
    result = compare()
    assert set(result["models"]) == {"digits", "resnet18"}
    for model, entry in result["models"].items():
        assert entry["disagreements"] == [], (model, entry)


def test_equal_knobs_agree_and_each_difference_is_named() -> None:
    assert disagreements(torchserve_knobs(TS_YAML, PROPS), tfserving_knobs(TF_TEXT)) == []
    cases = {
        "batch size": (TS_YAML.replace("batchSize: 32", "batchSize: 16"), PROPS, TF_TEXT),
        "batch delay": (TS_YAML, PROPS, TF_TEXT.replace("2000", "5000")),
        "batches at once": (TS_YAML, PROPS, TF_TEXT.replace("threads { value: 1 }", "threads { value: 2 }")),
        "queue": (TS_YAML, "job_queue_size=100\n", TF_TEXT),
        "padding": (TS_YAML, PROPS, TF_TEXT + "allowed_batch_sizes: 16\nallowed_batch_sizes: 32\n"),
    }  # fmt: skip
    for what, (ts_yaml, props, tf_text) in cases.items():
        found = disagreements(torchserve_knobs(ts_yaml, props), tfserving_knobs(tf_text))
        assert len(found) == 1 and found[0].startswith(what), (what, found)


def test_defaults_left_out_are_the_servers_own(tmp_path: Path) -> None:
    assert torchserve_knobs("batchSize: 8\n", "")["job_queue_size"] == 100  # TorchServe 0.12's default
    assert tfserving_knobs("")["max_enqueued_batches"] == 10  # TF Serving's default


def test_the_environment_section_states_the_remaining_differences() -> None:
    env = environment.describe(None)
    assert env["batching"]["differences"] == list(DIFFERENCES)
    assert all(not m["disagreements"] for m in env["batching"]["models"].values())
    html = _environment({"environment": env})
    assert "Batch size unit" in html and "batchSize" in html and "num_batch_threads" in html
