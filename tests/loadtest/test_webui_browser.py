"""`make locust` in a real browser (Debian's headless Chromium through chromedriver) against the real native stack:
the start form a newcomer sees, a run started by clicking, its verdicts in the twinserve tab and its report.

Screenshots go to a temporary folder; TWINSERVE_SCREENSHOTS=docs/img writes the ones the docs show.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import locust_ui as ui
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,1000",
]
DEFAULT = "TorchServe REST direct · digits"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go."""
    out = Path(os.environ.get("TWINSERVE_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    """Headless Chromium with a fresh profile, driven by Debian's chromedriver (`make browser` installs both)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium or chromedriver missing: `make browser` installs Debian's (make test does it for you)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        opts.add_argument(flag)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _until(predicate, timeout_s: float = 20.0, what: str = "") -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _picker(driver) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    """Class name -> ticked, read from the class picker's rows."""
    out = {}
    for row in driver.find_elements("css selector", "table tr"):
        boxes = row.find_elements("css selector", "input[type=checkbox]")
        if boxes and "·" in row.text:
            out[row.text.splitlines()[0]] = boxes[0].is_selected()
    return out


def _type(driver, name: str, value: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element("css selector", f"input[name={name}]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value)


def _start(driver) -> None:  # type: ignore[no-untyped-def]
    button = driver.find_element("css selector", "button[type=submit]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()


def _open(driver, base: str) -> None:  # type: ignore[no-untyped-def]
    driver.get(base + "/")
    _until(lambda: _picker(driver) and driver.find_elements("id", "twinserve-users-note"), what="the start form")
    _until(lambda: sum(_picker(driver).values()) == 1, what="the default selection")


def test_the_start_form_offers_targets_with_one_default_and_says_what_users_mean(
    browser, webui: tuple[str, Path, int], shots: Path
) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = webui
    ui.wait_settled(base)
    _open(browser, base)
    picker = _picker(browser)
    assert len(picker) == 8 and "TF Serving (stand-in) gRPC via gateway · digits" in picker
    assert [name for name, ticked in picker.items() if ticked] == [DEFAULT]
    note = browser.find_element("id", "twinserve-users-note").text
    assert "one user per ticked target" in note and "Rate" in note
    assert browser.find_element("css selector", "input[name=userCount]").get_attribute("readonly") is not None
    assert not browser.find_element("css selector", "input[name=host]").is_displayed()
    rate = browser.find_element("css selector", "input[name=rate]")
    assert rate.is_displayed() and rate.get_attribute("value") == "50"
    assert "requests/s offered to EACH ticked target" in browser.find_element("tag name", "body").text
    row = next(r for r in browser.find_elements("css selector", "table tr") if r.text.startswith(DEFAULT))
    assert row.is_displayed() and browser.execute_script(
        "var r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight", row
    ), "the preselected row is scrolled into the picker's view"
    browser.set_window_size(1100, 2000)  # the whole form, Custom parameters included
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / "locust-ui.png"))


def test_a_bad_rate_is_refused_in_the_form_with_a_message(browser, webui: tuple[str, Path, int]) -> None:  # type: ignore[no-untyped-def]
    base, _, _ = webui
    ui.wait_settled(base)
    _open(browser, base)
    _type(browser, "rate", "lots")
    _start(browser)
    _until(lambda: "Rate: 'lots' is not a number" in browser.find_element("tag name", "body").text, what="the message")
    assert ui.get(base + "/stats/requests")["user_count"] == 0


def test_a_run_started_by_clicking_is_saved_and_shown_in_the_twinserve_tab(
    browser, webui: tuple[str, Path, int], shots: Path
) -> None:  # type: ignore[no-untyped-def]
    base, results, _ = webui
    ui.wait_settled(base)
    before = ui.get(base + "/twinserve/status")["run_dir"]
    _open(browser, base)
    extra = "TF Serving (stand-in) gRPC via gateway · digits"
    row = next(r for r in browser.find_elements("css selector", "table tr") if r.text.startswith(extra))
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.find_element("css selector", "input[type=checkbox]").click()
    _until(lambda: _picker(browser)[extra], what="the second target ticked")
    for name, value in {"rate": "20", "measuredSeconds": "6", "warmupSeconds": "1", "windowSeconds": "1"}.items():
        _type(browser, name, value)
    _start(browser)
    status = ui.wait_saved(base, previous=before, timeout_s=90)
    assert status["error"] is None and Path(status["run_dir"]).parent == results
    assert {r["target"] for r in status["rows"][1:]} == {DEFAULT, extra}
    assert (Path(status["run_dir"]) / "report.html").is_file()

    tab = _until(
        lambda: next(
            (t for t in browser.find_elements("css selector", "[role=tab]") if t.text.lower() == "twinserve"), None
        ),
        what="the twinserve tab",
    )
    tab.click()  # type: ignore[attr-defined]
    body = _until(
        lambda: status["run_dir"] in (text := browser.find_element("tag name", "body").text) and text,
        what="the saved run in the tab",
    )
    assert DEFAULT in body and extra in body and "VALID" in body  # INVALID counts: 6 s is short on purpose
    _until(lambda: "STOPPED" in browser.find_element("tag name", "body").text.upper(), what="the stopped state")
    browser.save_screenshot(str(shots / "locust-ui-run.png"))

    download = next(t for t in browser.find_elements("css selector", "[role=tab]") if "download" in t.text.lower())
    download.click()
    link = _until(
        lambda: next(
            (a for a in browser.find_elements("tag name", "a") if "report.html of the last UI run" in a.text), None
        ),
        what="the report link",
    )
    link.click()  # type: ignore[attr-defined]
    _until(lambda: "twinserve" in browser.title.lower() or "TorchServe" in browser.page_source, what="the report")
    assert "stand-in" in browser.page_source.lower()
    browser.save_screenshot(str(shots / "locust-ui-report.png"))

    browser.get(base + "/")  # back to the stopped run: NEW mounts a fresh start form, preselected again
    new = _until(
        lambda: next((b for b in browser.find_elements("tag name", "button") if b.text.upper() == "NEW"), None),
        what="the NEW button",
    )
    new.click()  # type: ignore[attr-defined]
    _until(lambda: [n for n, ticked in _picker(browser).items() if ticked] == [DEFAULT], what="the default again")
    assert browser.find_elements("id", "twinserve-users-note")
