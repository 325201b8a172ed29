"""The report as a reader sees it: opened in headless Chromium at a normal window width, with a
screenshot kept beside it. Catches what no HTML parser does: an image that does not load, a
table cut off at the right edge (or hidden behind a sideways scroll bar), a path of the machine
that made it, a traceback.

Chromium runs on a copy of the report with a small script added that measures the page after
it loaded and writes what it found into the DOM, which `--dump-dom` prints; nothing is fetched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from helpers.core.errors import DataError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
WINDOW = (1280, 900)  # a laptop browser window
# Text that must not reach a reader: a machine's own paths, and Python tracebacks.
_ABSOLUTE = re.compile(
    r"(?<![\w.])(/(home|Users|root|tmp|work|mnt|var)/[^\s\"'<>)]+|[A-Z]:\\[^\s]+)"
)
_TRACEBACK = "Traceback (most recent call last)"

_MEASURE = """
<script>
window.addEventListener("load", function () {
  var width = document.documentElement.clientWidth;
  var images = Array.from(document.images);
  var found = {
    images: images.length,
    broken: images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                  .map(function (i) { return (i.alt || i.src || "").slice(0, 60); }),
    overflowing: Array.from(document.querySelectorAll("body *")).filter(function (e) {
      var r = e.getBoundingClientRect();
      return r.width > 0 && r.right > width + 1;  // cut off, or behind a sideways scroll bar
    }).filter(function (e) {  // the outermost element that sticks out, not all its children
      var p = e.parentElement, r = p && p.getBoundingClientRect();
      return !(r && r.right > width + 1);
    }).map(function (e) {
      return e.tagName.toLowerCase() + ": " + Math.round(e.getBoundingClientRect().right) +
             " px wide: " + (e.innerText || "").trim().slice(0, 40);
    }),
    text: document.body.innerText
  };
  var out = document.createElement("script");
  out.type = "application/json"; out.id = "report-check";
  out.textContent = JSON.stringify(found).replace(/</g, "\\\\u003c");
  document.body.appendChild(out);
});
</script>
"""


@dataclass
class BrowserCheck:
    """What a reader would meet in the report; `problems` is empty for a good one."""

    images: int
    broken_images: list[str] = field(default_factory=list)
    overflowing: list[str] = field(default_factory=list)
    absolute_paths: list[str] = field(default_factory=list)
    tracebacks: int = 0
    screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        """One line per kind of problem, for the terminal and the tests."""
        found = []
        if self.broken_images:
            found.append(
                f"{len(self.broken_images)} image(s) did not load: {self.broken_images[:3]}"
            )
        if self.overflowing:
            found.append(f"cut off at {WINDOW[0]} px: {'; '.join(self.overflowing[:3])}")
        if self.absolute_paths:
            found.append(f"paths of this machine: {', '.join(self.absolute_paths[:3])}")
        if self.tracebacks:
            found.append(f"{self.tracebacks} traceback(s)")
        return found


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def _run(chromium: str, args: list[str], timeout: float) -> str:
    """Headless Chromium with the flags a container needs; its stdout."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--virtual-time-budget=15000",
    ]
    done = subprocess.run(
        [chromium, *flags, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.stdout


def check_report(
    html: str | os.PathLike,
    screenshot: str | os.PathLike | None = None,
    *,
    chromium: str | None = None,
    timeout: float = 120.0,
) -> BrowserCheck:
    """Open the report in headless Chromium and measure it; optionally keep a screenshot.

    A DataError when the file is missing, no browser is found or the page did not load."""
    path = Path(html).resolve()
    if not path.is_file():
        raise DataError(path, "report not found")
    chromium = chromium or find_chromium()
    if chromium is None:
        raise DataError(
            path, f"no browser to check it with (looked for {', '.join(CHROMIUM_NAMES)})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / path.name
        probe.write_text(
            path.read_text(encoding="utf-8").replace("</body>", _MEASURE + "</body>"),
            encoding="utf-8",
        )
        dom = _run(chromium, ["--dump-dom", probe.as_uri()], timeout)
    match = re.search(
        r'<script type="application/json" id="report-check">(.*?)</script>', dom, flags=re.S
    )
    if match is None:
        raise DataError(path, "Chromium did not finish loading the report")
    found = json.loads(match.group(1))
    text = found["text"]
    check = BrowserCheck(
        images=found["images"],
        broken_images=found["broken"],
        overflowing=found["overflowing"],
        absolute_paths=sorted({m.group(0) for m in _ABSOLUTE.finditer(text)})[:10],
        tracebacks=text.count(_TRACEBACK),
    )
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        shot.parent.mkdir(parents=True, exist_ok=True)
        _run(chromium, [f"--screenshot={shot}", path.as_uri()], timeout)
        check.screenshot = shot if shot.is_file() else None
    return check
