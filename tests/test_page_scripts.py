"""The pages' scripts parse: a syntax error in one leaves its page blank, which only a browser test (slow,
and only of the paths it walks) would otherwise find. Node (installed for s3rver, see the Makefile) checks
each as the ES module the page loads."""

import shutil
import subprocess
from pathlib import Path

import pytest

from antifraud.web.pages import STATIC

SCRIPTS = sorted(STATIC.glob("*.js"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_each_page_script_parses_as_a_module(script: Path, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed (make installs npm's s3rver with it)"
    module = tmp_path / f"{script.stem}.mjs"  # .mjs: checked as a module (top-level await, import)
    module.write_text(script.read_text(encoding="utf-8"), encoding="utf-8")
    checked = subprocess.run([node, "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
