"""Screenshots of every page of `tunewright ui`, for the README.

    python bench/ui_screenshots.py RUNS_DIR [--run NAME] [--out docs/ui] [--chat-prompt TEXT]

Serves the UI on a free 127.0.0.1 port over RUNS_DIR (its runs folder), opens each page in
headless Chromium (`make browser` installs it) and saves runs.png, compare.png, run.png,
data.png, chat.png (after loading the models and streaming one reply), feedback.png and
new-run.png into --out. --run picks the run shown (default: the first with an eval report);
compare shows the first two runs. Each page is captured once its content is there (an element
waited for), not after a fixed delay.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

# Run as `python bench/ui_screenshots.py`: the repository root holds the test support (tests/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tests.support.serving import ServerThread

from tunewright.ui.app import create_app
from tunewright.ui.catalog import find_runs

WAIT = 120  # seconds: a model load on a big run takes a while


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--run", default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/ui"))
    parser.add_argument("--chat-prompt", default="What is the capital of France?")
    args = parser.parse_args()
    runs = find_runs([args.runs_dir])
    if not runs:
        sys.exit(f"no runs under {args.runs_dir}")
    chosen = args.run or next(
        (r.id for r in runs if (r.path / "eval" / "report.html").is_file()), runs[0].id
    )
    args.out.mkdir(parents=True, exist_ok=True)
    app = create_app([args.runs_dir.resolve()], Path.cwd())
    with ServerThread(app) as server, _browser() as browser:
        shoot = _shooter(browser, server.url, args.out)
        shoot("runs", "#/", "tr.run-row")
        if len(runs) > 1:
            shoot("compare", f"#/compare/{runs[0].id},{runs[1].id}", "#metric-compare")
        shoot("run", f"#/run/{chosen}", "#loss-curve circle.pt")
        shoot("data", f"#/data/{chosen}", "#checks", click="#render", then=".tok")
        shoot("feedback", f"#/feedback/{chosen}", "#import")
        shoot("new-run", "#/new", "#new-run")
        browser.get(f"{server.url}/#/chat/{chosen}")
        _wait(browser, "#chat-load").click()
        _wait(browser, '#chat-progress[data-state="ready"]')
        browser.find_element(By.ID, "chat-prompt").send_keys(args.chat_prompt)
        browser.find_element(By.ID, "chat-send").click()
        _wait(browser, '#answer-tuned[data-state="done"]')
        browser.save_screenshot(str(args.out / "chat.png"))
        print(args.out / "chat.png")
    app.state.ui.jobs.close()


def _shooter(browser: webdriver.Chrome, url: str, out: Path):
    def shoot(name: str, route: str, ready: str, click: str = "", then: str = "") -> None:
        browser.get(f"{url}/{route}")
        _wait(browser, ready)
        if click:
            browser.find_element(By.CSS_SELECTOR, click).click()
            _wait(browser, then)
        browser.save_screenshot(str(out / f"{name}.png"))
        print(out / f"{name}.png")

    return shoot


def _wait(browser: webdriver.Chrome, selector: str):
    return WebDriverWait(browser, WAIT).until(
        lambda b: b.find_element(By.CSS_SELECTOR, selector), selector
    )


class _browser:
    def __enter__(self) -> webdriver.Chrome:
        options = webdriver.ChromeOptions()
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
            options.add_argument(flag)
        options.add_argument("--window-size=1280,1000")
        # the driver on PATH: Selenium's manager would otherwise look for one on the network
        service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
        self.driver = webdriver.Chrome(options=options, service=service)
        return self.driver

    def __exit__(self, *exc: object) -> None:
        self.driver.quit()


if __name__ == "__main__":
    main()
