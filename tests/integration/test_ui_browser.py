"""`tunewright ui` in a real browser: headless Chromium driven by Selenium against the real app
(uvicorn on 127.0.0.1) over run folders that real `tunewright run`s produced with the tiny model.

Every wait is on an event (an element, a state attribute, a new point in the curve), never a
fixed sleep. `make test` installs Chromium and its driver (`make browser`); without them these
tests fail, saying so (a skipped browser test must not pass for a tested UI).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait
from tests.support.processes import started
from tests.support.projects import make_project
from tests.support.serving import ServerThread

from tunewright.request_log import RequestRecord

WAIT = 60  # seconds: turns a hang into a failure; not a speed check
ROWS = [
    {"instruction": f"Question {i}: name a colour.", "output": "The answer is blue."}
    for i in range(40)
] + [{"instruction": "Empty answer below.", "output": ""}]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A finished run `pipe` (data, train, eval; served with log_content: two logged exchanges)
    and the config of a long run `live` that a test starts."""
    from tunewright.cli import main

    folder = tmp_path_factory.mktemp("ui-project")
    config = make_project(
        folder,
        model=tiny_model_dir,
        rows=ROWS,
        name="pipe",
        data={"min_words": 1},
        train={"max_steps": 6, "batch_size": 8, "learning_rate": 0.003},
        eval={"max_new_tokens": 6, "bootstrap_samples": 100, "suites": []},
        export={"merge": False},
        serve={"log_content": True},
    )
    assert main(["run", str(config)]) == 0
    write_request_log(folder / "runs" / "pipe" / "serve" / "requests.jsonl")
    live = yaml.safe_load(config.read_text())
    live["name"] = "live"
    live["train"].update(max_steps=5000, eval_every=100000, save_every=100000)
    (folder / "live.yaml").write_text(yaml.safe_dump(live))
    return folder


def write_request_log(path: Path) -> None:
    """Two chat exchanges as `tunewright serve` logs them (its own record type)."""
    path.parent.mkdir(parents=True)
    lines = []
    for number, (question, answer) in enumerate(
        [("Question 1: name a colour.", "The answer is blue."), ("Name a fruit.", "Blue.")]
    ):
        record = RequestRecord(f"req-{number}", "/v1/chat/completions", time.time(), "pipe")
        record.status = 200
        record.prompt = [{"role": "user", "content": question}]
        record.output = answer
        lines.append(json.dumps(record.log_line(0.1, with_content=True)))
    # a model listing is logged too, with no prompt: not an exchange to judge
    listing = RequestRecord("req-models", "/v1/models", time.time())
    listing.status = 200
    lines.append(json.dumps(listing.log_line(0.1, with_content=True)))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def ui(project: Path) -> Iterator[str]:
    from tunewright.ui.app import create_app

    app = create_app([project / "runs"], project)
    with ServerThread(app) as server:
        yield server.url
    app.state.ui.jobs.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if shutil.which("chromedriver") is None:
        pytest.fail("chromedriver is not installed: run `make browser` (make test does)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,1600")
    if shutil.which("chromium"):
        options.binary_location = shutil.which("chromium")
    # the driver on PATH: Selenium's manager would otherwise look for one on the network
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def wait(browser: webdriver.Chrome, condition, message: str):
    """Until `condition(browser)` holds; a condition that finds its elements anew each time is
    safe on pages that redraw (a stale find is retried)."""
    return WebDriverWait(
        browser, WAIT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, message)


def css(browser: webdriver.Chrome, selector: str):
    return wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, selector), selector)


def test_runs_table_shows_each_run_with_stages_and_verdict(browser, ui, project) -> None:
    browser.get(f"{ui}/#/")

    def pipe_row(b: webdriver.Chrome) -> dict:
        row = b.find_element(By.CSS_SELECTOR, 'tr.run-row[data-run="pipe"]')
        states = {
            badge.get_attribute("data-stage"): badge.get_attribute("data-state")
            for badge in row.find_elements(By.CSS_SELECTOR, ".badge")
        }
        return {
            "states": states,
            "verdict": row.find_element(By.CSS_SELECTOR, ".verdict").text,
            "text": row.text,
        }

    row = wait(browser, pipe_row, "the run's row")  # redrawn every 2 s: read at once
    assert row["states"] == {"data": "done", "train": "done", "eval": "done", "export": "none"}
    metrics = json.loads((project / "runs/pipe/eval/metrics.json").read_text())
    assert row["verdict"] == metrics["verdict"]
    assert "lora" in row["text"] and metrics["primary_metric"] in row["text"]


def test_run_page_embeds_the_report_and_lists_checkpoints(browser, ui) -> None:
    browser.get(f"{ui}/#/run/pipe")
    assert len(css(browser, "#checkpoints").find_elements(By.TAG_NAME, "li")) >= 1
    wait(
        browser,
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#loss-curve .s0 circle.pt")) == 6,
        "6 loss points",
    )
    browser.switch_to.frame(css(browser, "iframe#report"))
    assert "pipe" in css(browser, "body").text
    browser.switch_to.default_content()


def test_loss_curve_grows_while_a_run_trains(browser, ui, project, tmp_path) -> None:
    command = [sys.executable, "-m", "tunewright", "run", str(project / "live.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with started(command, env, log=tmp_path / "live.log"):
        browser.get(f"{ui}/#/")
        css(browser, 'tr.run-row[data-run="live"]')  # the run appears once its folder exists
        browser.get(f"{ui}/#/run/live")
        points = lambda b: len(b.find_elements(By.CSS_SELECTOR, "#loss-curve .s0 circle.pt"))  # noqa: E731
        wait(browser, lambda b: points(b) >= 1, "a first point while training runs")
        first = points(browser)
        wait(browser, lambda b: points(b) > first, "more points without reloading the page")
        stage = '#run-stages .badge[data-stage="train"]'  # redrawn every 3 s: found anew
        wait(
            browser,
            lambda b: (
                b.find_element(By.CSS_SELECTOR, stage).get_attribute("data-state") == "running"
            ),
            "train running",
        )
        # the comparison shows the config keys the two runs differ in
        browser.get(f"{ui}/#/compare/pipe,live")
        keys = [c.text for c in css(browser, "#config-diff").find_elements(By.CSS_SELECTOR, "code")]
        assert {"name", "train.max_steps"} <= set(keys)


def test_data_page_shows_checks_rejections_and_loss_tokens(browser, ui) -> None:
    browser.get(f"{ui}/#/data/pipe")
    check = css(browser, 'tr[data-check="empty_output"]')
    assert check.find_elements(By.TAG_NAME, "td")[2].text == "1"
    check.find_element(By.CSS_SELECTOR, "a.loc").click()
    wait(
        browser, lambda b: "Empty answer below." in b.find_element(By.ID, "source-row").text, "row"
    )
    assert css(browser, 'details.reason[data-reason="empty_output"]')
    browser.find_element(By.ID, "render").click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#rendered .tok.loss"), "loss tokens")
    loss_text = "".join(t.text for t in browser.find_elements(By.CSS_SELECTOR, ".tok.loss"))
    assert "The answer is blue." in loss_text and "Question" not in loss_text


def test_new_run_form_shows_each_problem_at_its_key(browser, ui) -> None:
    browser.get(f"{ui}/#/new")
    css(browser, 'input[name="train.learning_rate"]').send_keys("-1")
    Select(css(browser, 'select[name="train.method"]')).select_by_visible_text("dora")
    browser.find_element(By.ID, "validate").click()
    error = css(browser, '[data-error-for="train.learning_rate"]')
    wait(browser, lambda b: "must be > 0" in error.text, "learning_rate error at its key")
    assert browser.find_element(By.CSS_SELECTOR, '[data-error-for="train.method"]').text == ""


def test_chat_streams_base_and_tuned_replies(browser, ui) -> None:
    browser.get(f"{ui}/#/chat/pipe")
    css(browser, "#chat-load").click()
    progress = css(browser, "#chat-progress")
    wait(browser, lambda b: progress.get_attribute("data-state") == "ready", "models loaded")
    assert "max 6 new tokens" in progress.text  # the eval's decoding settings
    browser.find_element(By.ID, "chat-prompt").send_keys("Question 3: name a colour.")
    browser.find_element(By.ID, "chat-send").click()
    for which in ("base", "tuned"):
        box = css(browser, f"#answer-{which}")
        wait(browser, lambda b, box=box: box.get_attribute("data-state") == "done", which)
        assert int(box.get_attribute("data-pieces")) >= 1


@pytest.fixture(scope="module")
def embedded_run(project: Path) -> str:
    """A run of the real embedded model (two LoRA steps) beside the tiny ones, for chat."""
    from tunewright.config import load_config
    from tunewright.training.stage import train_model

    config = make_project(
        project / "embedded",
        model="smollm2-135m-instruct",
        rows=ROWS,
        name="embedded",
        runs_dir="../runs",
        data={"min_words": 1},
        train={"max_steps": 2, "batch_size": 4},
        eval={"max_new_tokens": 12},
    )
    train_model(load_config(config))
    return "embedded"


def test_chat_streams_a_reply_from_the_embedded_model(browser, ui, embedded_run) -> None:
    browser.get(f"{ui}/#/chat/{embedded_run}")
    css(browser, "#chat-load").click()
    progress = css(browser, "#chat-progress")
    wait(browser, lambda b: progress.get_attribute("data-state") == "ready", "models loaded")
    assert "max 12 new tokens" in progress.text
    browser.find_element(By.ID, "chat-prompt").send_keys("What is the capital of France?")
    browser.find_element(By.ID, "chat-send").click()
    for which in ("base", "tuned"):
        box = css(browser, f"#answer-{which}")
        wait(browser, lambda b, box=box: box.get_attribute("data-state") == "done", which)
        assert int(box.get_attribute("data-pieces")) >= 2  # streamed, not one block
        assert "Paris" in box.text, box.text  # the real model's greedy answer


def test_feedback_marks_then_imports_as_training_rows(browser, ui, project) -> None:
    browser.get(f"{ui}/#/feedback/pipe")
    good = css(browser, '.exchange[data-request="req-0"]')
    shown = [
        e.get_attribute("data-request") for e in browser.find_elements(By.CSS_SELECTOR, ".exchange")
    ]
    assert sorted(shown) == ["req-0", "req-1"], shown
    good.find_element(By.CSS_SELECTOR, "button.good").click()
    bad = css(browser, '.exchange[data-request="req-1"]')
    bad.find_element(By.CSS_SELECTOR, "textarea.correction").send_keys("A banana.")
    bad.find_element(By.CSS_SELECTOR, "button.bad").click()
    for exchange, rating in ((good, "good"), (bad, "bad")):
        label = exchange.find_element(By.CSS_SELECTOR, ".rating")
        wait(
            browser,
            lambda b, label=label, rating=rating: label.get_attribute("data-rating") == rating,
            f"{rating} recorded",
        )
    browser.find_element(By.ID, "import").click()
    counts = css(browser, "#import-counts")
    assert counts.text.startswith("1 SFT rows, 1 preference pairs, 0 rejected")
    out = project / "runs/pipe/serve/requests-import"
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    pairs = [json.loads(line) for line in (out / "preference.jsonl").read_text().splitlines()]
    assert sft[0]["messages"][-1]["content"] == "The answer is blue."
    assert "A banana." in json.dumps(pairs[0]["chosen"]) and "Blue." in json.dumps(
        pairs[0]["rejected"]
    )


def test_new_run_starts_shows_progress_and_cancels(browser, ui, project, tiny_model_dir) -> None:
    browser.get(f"{ui}/#/new")
    values = {
        "name": "formrun",
        "model.name": str(tiny_model_dir),
        "data.train": "[train.jsonl]",
        "data.min_words": "1",
        "train.max_steps": "5000",
        "train.report_to": "[]",
    }
    for key, value in values.items():
        css(browser, f'input[name="{key}"]').send_keys(value)
    browser.find_element(By.ID, "start").click()
    state = css(browser, "#job-state")
    wait(browser, lambda b: state.get_attribute("data-state") == "running", "job running")
    log = browser.find_element(By.ID, "job-log")
    wait(browser, lambda b: "data" in log.text, "the run's own output as progress")
    written = yaml.safe_load((project / "formrun.yaml").read_text())
    assert written["train"] == {"max_steps": 5000, "report_to": []}
    browser.find_element(By.ID, "cancel").click()
    wait(browser, lambda b: state.get_attribute("data-state") == "cancelled", "job cancelled")
