"""The published HTML page in a real browser: Debian's headless Chromium runs its script, and the DOM it
dumps must hold every board row (sorted by the script when asked) and a screenshot must come out."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from genbench.leaderboard import read_board, render

IMAGENET_BOARD = Path(__file__).resolve().parents[1] / "leaderboards" / "imagenet256.csv"

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900"]


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Debian's `chromium` is not installed: run `apt-get install -y chromium` (.ci/run does)")
    profile = tmp_path / "profile"
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    board = read_board(IMAGENET_BOARD)
    path = tmp_path_factory.mktemp("html") / "imagenet256.html"
    path.write_text(render(board, "html"), encoding="utf-8")
    return path, board


def test_chromium_renders_every_row_after_the_script_runs(page, tmp_path):
    path, board = page
    dom = chromium(tmp_path, "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = dom.stdout
    assert len(re.findall(r'<tr class="(?:reported|measured)"', body)) == len(board)
    # the count is written by the inline script, so it proves the script ran in the browser
    assert f'<span id="count">{len(board)}</span>' in body


def test_chromium_runs_click_to_sort(page, tmp_path):
    path, board = page
    dom = chromium(tmp_path, "--dump-dom", path.as_uri() + "#sort=fid")
    assert dom.returncode == 0, dom.stderr[-2000:]
    fids = [float(v) for v in re.findall(r'<td class="num fid" data-v="([^"]+)"', dom.stdout)]
    assert len(fids) == len(board)
    assert fids == sorted(board["fid"].tolist())  # unsorted in the file, sorted by the page's script
    assert fids != board["fid"].tolist()


def test_chromium_screenshot(page, tmp_path):
    path, _ = page
    shot = tmp_path / "board.png"
    result = chromium(tmp_path, f"--screenshot={shot}", path.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
