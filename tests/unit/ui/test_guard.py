"""Who may use the web UI: a token beyond loopback, loopback Host names, a header on writes."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tunewright.ui.app import create_app
from tunewright.ui.guard import COOKIE


def client(tmp_path: Path, token: str | None, host: str = "127.0.0.1") -> TestClient:
    return TestClient(create_app([tmp_path], tmp_path, token), base_url=f"http://{host}:7860")


def test_loopback_needs_no_token_but_refuses_other_host_names(tmp_path: Path) -> None:
    assert client(tmp_path, None).get("/api/runs").status_code == 200
    assert client(tmp_path, None, host="localhost").get("/api/runs").status_code == 200
    rebound = client(tmp_path, None, host="attacker.example").get("/api/runs")
    assert rebound.status_code == 403


def test_token_by_query_sets_a_cookie_then_the_cookie_or_header_is_enough(tmp_path: Path) -> None:
    ui = client(tmp_path, "s3cret", host="10.0.0.5")
    assert ui.get("/api/runs").status_code == 401
    assert ui.get("/api/runs", headers={"X-Tunewright-Token": "wrong"}).status_code == 401
    first = ui.get("/?token=s3cret", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert COOKIE in first.headers["set-cookie"] and "HttpOnly" in first.headers["set-cookie"]
    assert ui.get("/api/runs").status_code == 200  # the client kept the cookie
    fresh = client(tmp_path, "s3cret", host="10.0.0.5")
    assert fresh.get("/api/runs", headers={"X-Tunewright-Token": "s3cret"}).status_code == 200


def test_writes_need_the_ui_header(tmp_path: Path) -> None:
    ui = client(tmp_path, None)
    assert ui.post("/api/validate", json={"values": {}}).status_code == 403
    answer = ui.post("/api/validate", json={"values": {}}, headers={"X-Tunewright-UI": "1"})
    assert answer.status_code == 200


def test_run_files_stay_inside_the_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "one"
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text("name: one\n")
    (run / "eval" / "report.html").write_text("<p>report</p>")
    (tmp_path / "secret.txt").write_text("no")
    ui = client(tmp_path, None)
    assert ui.get("/files/one/eval/report.html").text == "<p>report</p>"
    assert ui.get("/files/one/%2e%2e/secret.txt").status_code == 404
    assert ui.get("/files/one/..%2fsecret.txt").status_code == 404
