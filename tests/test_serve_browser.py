"""The page of `embed serve` in a real browser: Debian's chromium, headless, driven by Selenium through chromedriver.

It draws a symbol with pointer events, enrols it under a name, draws it again elsewhere on the pad and reads the
name back, then forgets the class from the list. Nothing downloads a browser: where chromium, chromedriver or
Selenium is missing the test is skipped, except in CI (``CI`` set), where that is a failure. The screenshot goes
to the test's folder, and also to ``$TRIPLETSHOT_SCREENSHOT`` when set (``docs/serve.png`` was made so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx  # noqa: E402  (after tests.test_serve, which skips without the serve extra)
import pytest

from tests.test_serve import copy_run, serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 300  # seconds: only stops a hung page on a slow shared machine; nothing is timed

# A page of another site, framed sandboxed (so its origin is "null"), sending an enrolment as a form would: a
# multipart POST is a "simple" request, sent without a CORS preflight, so only the server can refuse it.
ATTACK = """
<script>
const canvas = document.createElement("canvas");
canvas.width = canvas.height = 28;
const pen = canvas.getContext("2d");
pen.fillStyle = "#fff";
pen.fillRect(6, 6, 16, 16);
canvas.toBlob((png) => {
  const form = new FormData();
  form.append("images", png, "evil.png");
  fetch("URL/classes/evil/images", { method: "POST", body: form })
    .then(() => parent.postMessage("answered", "*"), () => parent.postMessage("sent", "*"));
});
</script>
"""

# A zigzag with a tail, in CSS pixels from the pad's centre: no digit looks like it.
STROKE = [(-70, -60), (60, -60), (-60, 10), (60, 10), (-50, 70), (20, 40)]


def browser_or_skip():
    """A headless chromium driven by Selenium, or a skip (a failure in CI) saying what is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if missing:
        message = (
            "no browser for the page test: missing "
            + ", ".join(missing)
            + " (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail(message + "; CI is set, so this is a failure, not a skip")
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1200,1050",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def draw(driver, shift: tuple[int, int]) -> None:
    """One stroke along :data:`STROKE`, moved by ``shift``, with a mouse's pointer events."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    (x0, y0), rest = STROKE[0], STROKE[1:]
    actions = ActionChains(driver, duration=20).move_to_element_with_offset(pad, x0 + shift[0], y0 + shift[1])
    actions.click_and_hold()
    previous = STROKE[0]
    for x, y in rest:
        steps = 6  # several moves per segment, as a hand makes them
        for i in range(1, steps + 1):
            dx = round((x - previous[0]) * i / steps) - round((x - previous[0]) * (i - 1) / steps)
            dy = round((y - previous[1]) * i / steps) - round((y - previous[1]) * (i - 1) / steps)
            actions.move_by_offset(dx, dy)
        previous = (x, y)
    actions.release().perform()


def test_draw_enrol_draw_again_and_read_the_name_back(digits_run, tmp_path):
    driver = browser_or_skip()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT)
    text = lambda element_id: driver.find_element(By.ID, element_id).text  # noqa: E731
    run_dir = copy_run(digits_run, tmp_path)
    try:
        with serving(run_dir) as server:
            driver.get(server.url + "/")
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#classes li")) == 10)
            assert "digits run" in text("run-info")
            assert not driver.find_element(By.ID, "token-row").is_displayed()  # this server needs no token

            driver.execute_script(
                "window.attack = null; addEventListener('message', (e) => { window.attack = e.data; });"
                "const frame = document.createElement('iframe'); frame.sandbox = 'allow-scripts';"
                "frame.srcdoc = arguments[0]; document.body.appendChild(frame);",
                ATTACK.replace("URL", server.url),
            )
            names = lambda: {c["name"] for c in httpx.get(server.url + "/classes", timeout=60).json()}  # noqa: E731
            wait.until(lambda d: d.execute_script("return window.attack") or "evil" in names())  # it was sent
            assert "evil" not in names()

            draw(driver, (0, 0))
            wait.until(lambda d: text("answer-name") not in ("–", ""))  # the page asked by itself
            driver.find_element(By.ID, "enrol-name").send_keys("zigzag")
            driver.find_element(By.ID, "enrol").click()
            wait.until(lambda d: "enrolled as zigzag" in text("status"))
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#classes li[data-name="zigzag"] img'))

            driver.find_element(By.ID, "clear").click()
            draw(driver, (25, 15))  # the same symbol, elsewhere on the pad
            driver.find_element(By.ID, "ask").click()
            wait.until(lambda d: text("answer-name") == "zigzag")
            assert "confidence" in text("answer-detail") and "distance" in text("answer-detail")
            nearest = driver.find_elements(By.CSS_SELECTOR, "#neighbours figure")
            assert nearest and nearest[0].find_element(By.TAG_NAME, "figcaption").text.startswith("zigzag")
            shown = driver.execute_script("return document.querySelector('#neighbours img').naturalWidth")
            assert shown == 28  # the enrolled drawing's thumbnail, as the embedder saw it
            shot = tmp_path / "serve.png"
            driver.save_screenshot(str(shot))
            if os.environ.get("TRIPLETSHOT_SCREENSHOT"):
                shutil.copyfile(shot, os.environ["TRIPLETSHOT_SCREENSHOT"])

            driver.find_element(By.CSS_SELECTOR, '#classes li[data-name="zigzag"] button').click()
            driver.switch_to.alert.accept()
            wait.until(lambda d: "forgot zigzag" in text("status"))  # said before the list is fetched again
            wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, '#classes li[data-name="zigzag"]'))
            assert len(driver.find_elements(By.CSS_SELECTOR, "#classes li")) == 10
            draw(driver, (5, 30))  # the page asks by itself again: its answer must not erase what forget said
            wait.until(lambda d: text("answer-name") not in ("zigzag", "–", ""))
            assert "forgot zigzag" in text("status")

            driver.find_element(By.LINK_TEXT, "API (OpenAPI)").click()  # Swagger UI, from this server alone
            wait.until(lambda d: "/predict" in [e.text for e in d.find_elements(By.CLASS_NAME, "opblock-summary-path")])
            loaded = driver.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
            assert loaded and all(url.startswith(server.url + "/") for url in loaded), loaded
    finally:
        driver.quit()


def test_the_pool_card_shows_unclaimed_images_and_a_click_names_one(digits_run, tmp_path):
    """The page of a run with a pool: its unclaimed clusters, and naming one image enrols its class."""
    from embedder.runs.pool import set_pool

    driver = browser_or_skip()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT)
    run_dir = copy_run(digits_run, tmp_path)
    set_pool(run_dir, "rest", log=lambda _: None)
    try:
        with serving(run_dir) as server:
            driver.get(server.url + "/")
            wait.until(lambda d: d.find_element(By.ID, "pool-card").is_displayed())
            images = driver.find_elements(By.CSS_SELECTOR, "#pool-clusters img")
            assert images and "unlabelled images" in driver.find_element(By.ID, "pool-info").text
            wait.until(lambda d: d.execute_script("return document.querySelector('#pool-clusters img').naturalWidth"))
            first = images[0].get_attribute("data-pool-id")
            images[0].click()
            wait.until(expected_conditions.alert_is_present())
            alert = driver.switch_to.alert
            alert.send_keys("found")
            alert.accept()
            wait.until(lambda d: f"enrolled pool image {first} as found" in d.find_element(By.ID, "status").text)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#classes li[data-name="found"]'))
            names = {c["name"] for c in httpx.get(server.url + "/classes", timeout=60).json()}
            assert "found" in names
    finally:
        driver.quit()
