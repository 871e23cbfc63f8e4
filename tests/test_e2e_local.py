"""End to end from the README's run command: `make run` serves the page and answers over HTTP,
and a real headless Chromium asks, follows a source link and leaves feedback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CLINIC_TOKEN, PHARMACY_TOKEN, REPO, auth, browser_required

STARTUP_LIMIT_S = 600  # a generous bound on model loading, not a performance assertion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("run-data")
    port = free_port()
    log = (data / "server.log").open("w")
    env = os.environ | {"CAREQA_DATA_DIR": str(data)}
    proc = subprocess.Popen(
        ["make", "run", f"PORT={port}"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_LIMIT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`make run` exited with {proc.returncode}:\n{(data / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready:\n{(data / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_the_run_command_serves_the_page_and_answers_code_75(server):
    base, _ = server
    page = httpx.get(base + "/")
    assert page.status_code == 200 and "CareQA" in page.text
    body = httpx.post(
        f"{base}/v1/ask",
        json={"question": "What does rejection code 75 mean?"},
        headers=auth(PHARMACY_TOKEN),
        timeout=120,
    ).json()
    assert "prior authorization" in body["text"].lower()
    cited = {n for s in body["sources"] for n in [s["n"]] if f"[{n}" in body["text"]}
    urls = [s["url"] for s in body["sources"] if s["n"] in cited]
    assert any("claim-rejection-codes.md" in u for u in urls)
    doc = httpx.get(base + next(u for u in urls if "claim-rejection-codes.md" in u).split("#")[0])
    assert doc.status_code == 200 and "prior authorization" in doc.text.lower()


def test_the_run_command_keeps_tenants_apart(server):
    base, _ = server
    body = httpx.post(
        f"{base}/v1/ask",
        json={"question": "What does rejection code 75 mean?"},
        headers=auth(CLINIC_TOKEN),
        timeout=120,
    ).json()
    assert all(s["doc_id"].startswith("clinic/") for s in body["sources"])


def find_chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
    found = find_chromium()
    if found is None:
        message = (
            "the browser test needs Debian's chromium and chromium-driver: "
            "sudo apt-get install chromium chromium-driver"
        )
        if browser_required():
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_an_agent_asks_follows_a_source_and_leaves_feedback_in_a_real_browser(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, data = server
    wait = WebDriverWait(browser, 120)
    browser.get(base + "/")
    browser.find_element(By.ID, "token").send_keys(PHARMACY_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait.until(ec.visibility_of_element_located((By.ID, "question")))
    assert "Northwind Pharmacy" in browser.find_element(By.ID, "who").text

    browser.find_element(By.ID, "question").send_keys("What does rejection code 75 mean?")
    browser.find_element(By.ID, "ask").click()
    # the streamed answer is complete when its final rendering shows the feedback form
    wait.until(ec.visibility_of_element_located((By.ID, "feedback-form")))
    asked = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(name.endswith("/v1/ask/stream") for name in asked), asked
    answer = browser.find_element(By.ID, "answer")
    assert "prior authorization" in answer.text.lower()
    citation = answer.find_element(By.CSS_SELECTOR, "a.cite")
    number = citation.text.strip("[]")
    source_link = browser.find_element(By.CSS_SELECTOR, f"#source-{number} a")
    assert source_link.get_attribute("target") == "_blank"
    href = source_link.get_attribute("href")
    assert "claim-rejection-codes.md" in href

    main_window = browser.current_window_handle
    source_link.click()
    wait.until(lambda d: len(d.window_handles) == 2)
    browser.switch_to.window([h for h in browser.window_handles if h != main_window][0])
    wait.until(ec.presence_of_element_located((By.TAG_NAME, "article")))
    assert "prior authorization" in browser.find_element(By.TAG_NAME, "article").text.lower()
    browser.save_screenshot(str(tmp_path / "source.png"))
    browser.close()
    browser.switch_to.window(main_window)

    browser.find_element(By.ID, "thumbs-down").click()
    browser.find_element(By.ID, "comment").send_keys("Should mention the cash price option")
    browser.find_element(By.ID, "send-feedback").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "feedback-status"), "saved"))
    browser.save_screenshot(str(tmp_path / "answer.png"))

    export = subprocess.run(
        [str(REPO / ".venv" / "bin" / "careqa"), "feedback", "export", "--tenant", "pharmacy"],
        capture_output=True,
        text=True,
        env=os.environ | {"CAREQA_DATA_DIR": str(data)},
        cwd=REPO,
        check=True,
    )
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert any(
        r["rating"] == "down"
        and r["comment"] == "Should mention the cash price option"
        and r["question"] == "What does rejection code 75 mean?"
        for r in rows
    )


def test_the_page_falls_back_to_the_whole_answer_where_a_browser_cannot_read_a_stream(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = server
    wait = WebDriverWait(browser, 120)
    browser.get(base + "/")
    browser.execute_script("sessionStorage.clear();")  # signed out: the page starts at the token form
    browser.get(base + "/")
    # a browser without readable response bodies (no streams): fetch still works, the body cannot be read
    browser.execute_script("Object.defineProperty(Response.prototype, 'body', { get() { return null; } });")
    browser.find_element(By.ID, "token").send_keys(PHARMACY_TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait.until(ec.visibility_of_element_located((By.ID, "question")))
    browser.find_element(By.ID, "question").send_keys("What does rejection code 88 mean?")
    browser.find_element(By.ID, "ask").click()
    wait.until(ec.visibility_of_element_located((By.ID, "feedback-form")))
    assert "DUR" in browser.find_element(By.ID, "answer").text
    asked = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(name.endswith("/v1/ask") for name in asked), asked
