"""The HMI in a real browser (Debian's chromium, headless, driven by selenium) against a running line and
sequencer (issue 14): log in, watch a run progress, open a door on an emulated tool and see the hold
with its reason, make the door again and restart, be refused a scrap as an operator, abort with the
confirmation dialog, and be sent to the login page when logged out. Each page is screenshotted into
the test's directory (and into $WAFERLINE_SCREENSHOTS when set, for the README)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from sequencer.run.journal import read_events
from tests.fixtures.hmi import PASSWORD, Hmi

CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMEDRIVER is None,
                                reason="chromium-driver is not installed (.ci/run installs it)")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def shot(driver: WebDriver, tmp_path: Path, name: str) -> Path:
    """A screenshot of the page; it must be a PNG of the window with more than one colour in it."""
    path = tmp_path / f"hmi-{name}.png"
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{name}: an empty page?"
    if out := os.environ.get("WAFERLINE_SCREENSHOTS"):
        Path(out).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(out) / path.name)
    return path


def text_of(driver: WebDriver, element_id: str) -> str:
    try:
        return str(driver.find_element(By.ID, element_id).text)
    except WebDriverException:
        return ""


def until(driver: WebDriver, check: object, limit_s: float = 60) -> None:
    WebDriverWait(driver, limit_s, poll_frequency=0.1).until(lambda d: check(d))  # type: ignore[operator]


def login(driver: WebDriver, hmi: Hmi, user: str) -> None:
    driver.get(hmi.url + "/")
    until(driver, lambda d: d.current_url.endswith("/login"), 10)
    driver.find_element(By.ID, "user").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "submit").click()
    until(driver, lambda d: f"{user} (" in text_of(d, "who"), 10)


def test_operator_runs_watches_and_handles_a_door_in_the_browser(hmi: Hmi, browser: WebDriver,
                                                                 tmp_path: Path) -> None:
    browser.get(hmi.url + "/runs")
    until(browser, lambda d: d.current_url.endswith("/login"), 10)  # logged out: the login page
    shot(browser, tmp_path, "login")
    login(browser, hmi, "alice")
    until(browser, lambda d: "IDLE" in text_of(d, "tool-bonder1"), 30)
    shot(browser, tmp_path, "line")

    run = hmi.start_run()
    try:
        browser.find_element(By.ID, "nav-runs").click()
        until(browser, lambda d: "EXECUTE" in text_of(d, "runs"), 30)
        shot(browser, tmp_path, "runs")
        browser.find_element(By.CSS_SELECTOR, "#runs a").click()
        until(browser, lambda d: text_of(d, "progress").split(" ")[0] not in ("", "0"), 60)  # progress shows
        # the coater's door opens: the run holds before the coater's next step, and says why
        assert hmi.cli("sim", "interlock", "coater1", "door_closed", "open", "--endpoints",
                       str(hmi.eps)).returncode == 0
        until(browser, lambda d: "door_closed" in text_of(d, "held-reason"), 90)
        shown = "const g = document.getElementById('gantt'); return g && g.complete && g.naturalWidth > 100;"
        until(browser, lambda d: d.execute_script(shown), 30)  # the Gantt so far is drawn and shown
        assert "HELD" in text_of(browser, "run-state") or "HELD" in browser.page_source
        shot(browser, tmp_path, "run-held")
        browser.find_element(By.ID, "nav-line").click()
        until(browser, lambda d: "door_closed OPEN" in text_of(d, "tool-coater1"), 30)
        shot(browser, tmp_path, "line-door-open")
        browser.back()
        until(browser, lambda d: "door_closed" in text_of(d, "held-reason"), 30)

        # an operator may not scrap: the page says which role it takes
        browser.find_element(By.ID, "scrap-stack").send_keys("S1")
        browser.find_element(By.ID, "cmd-scrap").click()
        browser.find_element(By.ID, "confirm-yes").click()
        until(browser, lambda d: "needs the supervisor role" in text_of(d, "cmd-error"), 10)

        # the door is made again; restart, and the run goes on
        assert hmi.cli("sim", "interlock", "coater1", "door_closed", "made", "--endpoints",
                       str(hmi.eps)).returncode == 0
        browser.find_element(By.ID, "cmd-restart").click()
        until(browser, lambda d: text_of(d, "run-state") in ("EXECUTE", "COMPLETE"), 30)
        # abort: the dialog asks first; cancel does nothing, confirm aborts
        browser.find_element(By.ID, "cmd-abort").click()
        browser.find_element(By.ID, "confirm-no").click()
        browser.find_element(By.ID, "cmd-abort").click()
        shot(browser, tmp_path, "abort-confirm")
        browser.find_element(By.ID, "confirm-yes").click()
        until(browser, lambda d: "ABORTED" in text_of(d, "run-state"), 60)
        until(browser, lambda d: "controller not running" in text_of(d, "offline"), 30)
        shot(browser, tmp_path, "run-aborted")
        assert run.wait(30) == 5
    finally:
        if run.poll() is None:
            run.kill()

    browser.find_element(By.ID, "logout").click()
    until(browser, lambda d: d.current_url.endswith("/login"), 10)
    browser.get(hmi.url + "/api/line")
    assert "not logged in" in browser.page_source


def test_operator_acknowledges_an_alarm_and_an_engineer_shelves_one(hmi: Hmi, browser: WebDriver,
                                                                    tmp_path: Path) -> None:
    """ISA-18.2 in the browser: a tool alarm appears unacknowledged, the operator acknowledges it (the
    HMI's journal names her), it clears when the tool is reset and returns to normal; a process alarm
    can be shelved by an engineer, a safety alarm cannot."""
    assert hmi.cli("sim", "alarm", "mounter1", "900", "--endpoints", str(hmi.eps)).returncode == 0
    login(browser, hmi, "alice")
    browser.find_element(By.ID, "nav-alarms").click()
    until(browser, lambda d: "UNACK_ACTIVE" in text_of(d, "alarms-active"), 30)
    assert "(1)" in text_of(browser, "alarm-count") or "(" in text_of(browser, "alarm-count")
    shot(browser, tmp_path, "alarms")
    browser.find_element(By.CSS_SELECTOR, "[data-ack^='mounter1:900:']").click()
    until(browser, lambda d: "ACK_ACTIVE" in text_of(d, "alarms-active")
          and "UNACK_ACTIVE" not in text_of(d, "alarms-active"), 15)
    assert "hmi:alice" in text_of(browser, "alarms-active")
    assert hmi.cli("tools", "reset", "mounter1", "--line", str(hmi.line), "--endpoints",
                   str(hmi.eps)).returncode == 0
    until(browser, lambda d: "mounter1" in text_of(d, "alarms-recent"), 30)  # cleared and acked: normal
    shot(browser, tmp_path, "alarms-normal")
    journal = next((hmi.runs.parent / "hmi-state").glob("hmi-journal-*.sqlite"))
    actions = [e.data for e in read_events(journal) if e.kind == "alarm_action"]
    assert actions[-1]["action"] == "acknowledge" and actions[-1]["who"] == "hmi:alice"
    assert actions[-1]["role"] == "operator" and actions[-1]["alarm_id"] == 900


def test_the_default_job_from_the_browser_to_its_report(fast_hmi: Hmi, browser: WebDriver,
                                                        tmp_path: Path) -> None:
    """Start the default job (Flow A, 4 wafers) from the runs page, watch it complete with its claims, and
    read its report."""
    hmi = fast_hmi
    login(browser, hmi, "alice")
    browser.find_element(By.ID, "nav-runs").click()
    until(browser, lambda d: "flow-a" in text_of(d, "start-flow"), 10)
    browser.find_element(By.ID, "start-run").click()
    until(browser, lambda d: "flow-a started" in text_of(d, "start-note"), 10)
    until(browser, lambda d: "COMPLETE" in text_of(d, "runs"), 120)
    browser.find_element(By.CSS_SELECTOR, "#runs a").click()
    until(browser, lambda d: "Claims ok" in text_of(d, "claims"), 30)
    until(browser, lambda d: len(d.find_elements(By.ID, "report")) == 1, 30)
    shot(browser, tmp_path, "run-complete")
    browser.get(browser.find_element(By.ID, "report").get_attribute("href"))
    until(browser, lambda d: "flow-a" in d.page_source and "claim" in d.page_source.lower(), 30)
    drawn = "return [...document.images].every((i) => i.complete && i.naturalWidth > 100);"
    until(browser, lambda d: d.execute_script(drawn), 30)  # the Gantt and the cross-sections show
    shot(browser, tmp_path, "report")
    run_id = browser.current_url.split("/runs/")[1].split("/")[0]
    started = next(e for e in read_events(hmi.runs / run_id / "journal.sqlite")
                   if e.kind == "state" and e.data.get("command") == "start")
    assert "hmi:alice (operator)" in started.data["who"]
