"""The pages' scripts parse: a syntax error in one leaves its page blank, which only a browser test (slow,
and only of the paths it walks) would otherwise find. Node (installed for s3rver, see the Makefile) checks
each as the ES module the page loads."""

import json
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


def _run_module(tmp_path: Path, code: str) -> str:
    """Runs ``code`` as an ES module beside copies of the static scripts (imported as ./NAME.mjs); its output."""
    node = shutil.which("node")
    assert node is not None
    for script in SCRIPTS:
        (tmp_path / f"{script.stem}.mjs").write_text(script.read_text(encoding="utf-8"), encoding="utf-8")
    main = tmp_path / "main.mjs"
    main.write_text(code, encoding="utf-8")
    ran = subprocess.run([node, str(main)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def test_the_queue_puts_one_entitys_cases_together_in_the_place_of_its_first(tmp_path: Path) -> None:
    cases = [
        {"case_id": "a1", "entity": {"kind": "account", "value": "A"}},
        {"case_id": "p1", "entity": {"kind": "phone", "value": "P"}},
        {"case_id": "a2", "entity": {"kind": "account", "value": "A"}},
        {"case_id": "x1", "entity": {"kind": "phone", "value": "A"}},  # the same value, another kind of entity
    ]
    code = f"import {{ grouped }} from './lists.mjs';\nconsole.log(JSON.stringify(grouped({json.dumps(cases)})));"
    rows = json.loads(_run_module(tmp_path, code))
    assert [(r["case_id"], r["groupSize"], r["groupFirst"]) for r in rows] == [
        ("a1", 2, True),
        ("a2", 2, False),
        ("p1", 1, True),
        ("x1", 1, True),
    ]
