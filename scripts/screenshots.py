"""Regenerate the README's screenshots from a running `make demo`, with headless Debian Chromium.

  make demo                              # in one terminal, until it prints "everything is up"
  .venv/bin/python scripts/screenshots.py   # in another: docs/mldash.png and docs/dagster-assets.png

MLDash is driven through the sample project's flow (metric, best run, deployed model, four sentences); the Dagster
UI is shown on its asset graph. URLs come from the same settings as the demo (MLDASH_PORT, DAGSTER_PORT).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlplatform.settings import Settings  # noqa: E402
from tests.browser import chromium  # noqa: E402

SENTENCES = [
    "Very good movie!",
    "Not really enjoyable, not interesting at all, to be honest it has nothing",
    "I was looking forward to this movie. Trustworthy actors",
    "A dreadful, boring film. The acting was awful and the plot was a waste of time.",
]


def _wait(driver, css: str, timeout: float = 60):
    return WebDriverWait(driver, timeout).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _click(driver, element) -> None:
    driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'}); arguments[0].click();", element
    )


def _full_page(driver, path: Path, width: int) -> None:
    driver.execute_script("window.scrollTo({top: 0, behavior: 'instant'})")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height + 40, 800), 4000))
    time.sleep(1)
    driver.save_screenshot(str(path))
    print(f"screenshots: wrote {path.relative_to(REPO)} ({width} px wide)")


def mldash(url: str, out: Path, model: str, width: int = 1400) -> None:
    driver = chromium(width, 1400)
    try:
        driver.get(url)
        _wait(driver, "#runs-table .dash-cell")
        _click(driver, driver.find_element(By.ID, "refresh-button"))
        _click(driver, _wait(driver, f"#deployed-models input[value='{model}']"))
        _wait(driver, "#model-card-body")
        driver.find_element(By.ID, "input-text").send_keys("\n".join(SENTENCES))
        _click(driver, driver.find_element(By.ID, "predict-button"))
        _wait(driver, "#predictions", timeout=180)  # the first prediction loads the model in MLFlask
        _wait(driver, "#run-comparison .main-svg")
        time.sleep(1)
        _full_page(driver, out, width)
    finally:
        driver.quit()


def dagster(url: str, out: Path, width: int = 1400) -> None:
    driver = chromium(width, 800)
    try:
        driver.get(f"{url}/asset-groups/sentiment")
        WebDriverWait(driver, 90).until(lambda d: "served_predictions" in d.find_element(By.TAG_NAME, "body").text)
        time.sleep(2)
        for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
            button.click()  # the first visit's "join the community" dialog
        time.sleep(2)  # the graph lays itself out, then fits the view
        driver.save_screenshot(str(out))
        print(f"screenshots: wrote {out.relative_to(REPO)} ({width} px wide)")
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "docs")
    p.add_argument("--only", choices=["mldash", "dagster"])
    args = p.parse_args(argv)
    settings = Settings.load()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "mldash"):
        mldash(f"http://127.0.0.1:{settings.mldash_port}", args.out / "mldash.png", settings.model_name)
    if args.only in (None, "dagster"):
        dagster(f"http://127.0.0.1:{settings.dagster_port}", args.out / "dagster-assets.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
