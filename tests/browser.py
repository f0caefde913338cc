"""A real browser for tests of web pages: Debian's Chromium (`apt-get install chromium`) driven by Playwright.

No `playwright install`: that downloads a browser of its own. Without /usr/bin/chromium a browser test is
skipped on a workstation and fails in CI (`CI=true`, which `.ci/run` sets after installing Chromium).

Reading a page as a person does: `row_texts` gives what stands in the same visual row right of a label, and
`cell_text` what stands where a row and a column cross. They work on any table, grid or virtualized list,
whatever its markup.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",  # tests run as root in containers, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",  # a page reaches loopback servers only
]
VIEWPORT = {"width": 1600, "height": 1000}
TIMEOUT_MS = 60_000  # for each action and expectation; a loaded 2-core CI machine renders a large page slowly


def require_chromium() -> None:
    """Skip the calling test when Debian's Chromium is missing; fail instead in CI, which must have it."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    reason = f"Debian's Chromium is not installed ({CHROMIUM}): `apt-get install chromium` (.ci/run does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true, where browser tests may not be skipped", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium(user_data_dir: Path, **options: Any) -> Iterator[Any]:
    """Headless Chromium on a fresh profile in `user_data_dir` (new or empty), as a Playwright
    `BrowserContext` with TIMEOUT_MS as its default timeout: open pages with `.new_page()`. `options` go to
    `launch_persistent_context` (e.g. `viewport`)."""
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    user_data_dir.mkdir(parents=True, exist_ok=True)
    if any(user_data_dir.iterdir()):
        raise ValueError(f"{user_data_dir} is not empty: a browser test starts from a fresh profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(CHROMIUM), headless=True, args=ARGS,
            **{"viewport": VIEWPORT, **options})
        context.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def free_port() -> int:
    """A free TCP port on the loopback interface, for a server the browser opens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_ON_LINE = """([middle, left, right]) => {
  const text = el => (el.innerText || '').trim();
  const leaves = [...document.body.querySelectorAll('*')].filter(el => {
    if (!text(el) || [...el.children].some(child => text(child))) return false;
    const b = el.getBoundingClientRect();
    return b.width > 0 && b.top <= middle && b.bottom >= middle && b.right > left && b.left < right;
  });
  leaves.sort((a, b) => a.getBoundingClientRect().left - b.getBoundingClientRect().left);
  return leaves.map(text);
}"""


def row_texts(label: Any) -> list[str]:
    """The texts shown right of `label` (a Locator) on its line, left to right: a table row's other cells."""
    label.scroll_into_view_if_needed()
    box = label.bounding_box()
    assert box, f"{label} is not displayed"
    return label.page.evaluate(_ON_LINE, [box["y"] + box["height"] / 2, box["x"] + box["width"], 1e9])


def cell_text(row: Any, column: Any) -> str:
    """The text shown where the line of `row` (a Locator inside it) crosses the column under `column` (its
    header), as a person reads a table; the header is scrolled into view first (a wide table scrolls)."""
    column.scroll_into_view_if_needed()
    across, down = row.bounding_box(), column.bounding_box()
    assert across and down, f"{row} or {column} is not displayed"
    texts = row.page.evaluate(_ON_LINE, [across["y"] + across["height"] / 2, down["x"], down["x"] + down["width"]])
    return " ".join(texts)
