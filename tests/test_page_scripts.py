"""The pages' scripts parse: a syntax error in one leaves its page blank, which only a browser test (slow,
and only of the paths it walks) would otherwise find. Node (installed for s3rver, see the Makefile) checks
each as the ES module the page loads."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from antifraud.alerts.explain import DECIMALS, catalog, format_unit
from antifraud.web.pages import STATIC

SCRIPTS = sorted(STATIC.glob("*.js"))
CATALOGS_UNITS: dict[str, str] = catalog("en")["units"]


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
    code = f"import {{ grouped }} from './pure.mjs';\nconsole.log(JSON.stringify(grouped({json.dumps(cases)})));"
    rows = json.loads(_run_module(tmp_path, code))
    assert [(r["case_id"], r["groupSize"], r["groupFirst"]) for r in rows] == [
        ("a1", 2, True),
        ("a2", 2, False),
        ("p1", 1, True),
        ("x1", 1, True),
    ]


@pytest.mark.parametrize("unit", ["hours", "percent", "times", "count", "yuan"])
def test_the_pages_round_a_reasons_value_as_the_server_does(unit: str, tmp_path: Path) -> None:
    """Halves (on the number as written, and in binary: 0.25, 0.35, 1.005, 2.675), negatives, zero, large."""
    values = [0.25, 0.35, 0.45, 1.005, 2.675, 0.05, 0.15, 12345.55, -0.25, -0.04, 0.0, 9.2374, 0.835, 1e-7, 3.0]
    decimals = DECIMALS[unit]
    code = (
        "import { rounded } from './pure.mjs';\n"
        f"const values = {json.dumps(values)};\n"
        f"console.log(JSON.stringify(values.map(v => rounded({'v * 100' if unit == 'percent' else 'v'}, {decimals}))));"
    )
    in_the_page = json.loads(_run_module(tmp_path, code))
    on_the_server = [format_unit(v, unit, "en") for v in values]
    template = CATALOGS_UNITS[unit]
    for value, page, server in zip(values, in_the_page, on_the_server, strict=True):
        number = f"{page:,.2f}" if unit == "yuan" else repr(page + 0).removesuffix(".0")  # as String(n + 0) in JS
        assert template.replace("{n}", number) == server, (value, page, server)
