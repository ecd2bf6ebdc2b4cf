"""The documents that restate the code stay true to it.

- Every environment variable `chatsite/settings.py` reads is described in docs/configuration.md and
  listed in .env.example, and neither names one that is no longer read.
- docs/benchmarks.md's results table is the one `python -m bench.table` makes from bench/results.json.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from bench import table

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "chatsite" / "settings.py"
CONFIGURATION = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"
BENCHMARKS = ROOT / "docs" / "benchmarks.md"

ENV_HELPERS = re.compile(r"_env\w*")
NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _is_os_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ" and getattr(node.value, "id", None) == "os"


def _reads_environment(func: ast.expr) -> bool:
    """`_env`, `_env_bool`, ... (settings' helpers), `os.environ.get` (and its kin) or `os.getenv`."""
    if isinstance(func, ast.Name):
        return bool(ENV_HELPERS.fullmatch(func.id))
    if isinstance(func, ast.Attribute):
        environ_method = func.attr in ("get", "setdefault", "pop") and _is_os_environ(func.value)
        return environ_method or (func.attr == "getenv" and getattr(func.value, "id", None) == "os")
    return False


def _first_string(args: list[ast.expr]) -> str | None:
    if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
        return args[0].value
    return None


def names_read(source: str) -> set[str]:
    """Every variable name read by a literal: `_env*("NAME", ...)`, `os.environ.get("NAME")`,
    `os.environ["NAME"]`, `os.getenv("NAME")`."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Call) and _reads_environment(node.func):
            name = _first_string(node.args)
        elif isinstance(node, ast.Subscript) and _is_os_environ(node.value):
            name = _first_string([node.slice])
        if name is not None:
            names.add(name)
    return names


def names_documented(markdown: str) -> set[str]:
    """The variables of the tables' rows: a first cell that is one backticked name."""
    names = set()
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(cells) >= 3:
            match = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", cells[0])
            if match:
                names.add(match[1])
    return names


def names_listed(env_file: str) -> set[str]:
    """`NAME=value` and commented `# NAME=` lines."""
    return {match[1] for match in re.finditer(r"^#?\s*([A-Z][A-Z0-9_]*)=", env_file, re.MULTILINE)}


def _differences(read: set[str], documented: set[str]) -> str:
    return f"read but not documented: {sorted(read - documented)}; documented but not read: {sorted(documented - read)}"


def test_settings_reads_variables_by_name():
    read = names_read(SETTINGS.read_text())
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY"} <= read
    assert all(NAME.fullmatch(name) for name in read), read


def test_the_reader_finds_every_form_of_read():
    source = (
        "import os\n"
        "a = _env('A')\nb = _env_bool('B', True)\nc = _env_number('C', 1)\nd = _env_rate('D', '5/m')\n"
        "e = os.environ.get('E', '')\nf = os.environ['F']\ng = os.getenv('G')\nh = _env(name)\n"
    )
    assert names_read(source) == {"A", "B", "C", "D", "E", "F", "G"}


def test_every_variable_read_is_in_docs_configuration():
    read, documented = names_read(SETTINGS.read_text()), names_documented(CONFIGURATION.read_text())
    assert read == documented, _differences(read, documented)


def test_every_variable_read_is_in_env_example():
    read, listed = names_read(SETTINGS.read_text()), names_listed(ENV_EXAMPLE.read_text())
    assert read == listed, _differences(read, listed)


def test_configuration_describes_each_variable_once():
    rows = re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", CONFIGURATION.read_text(), re.MULTILINE)
    assert len(rows) == len(set(rows)), sorted(name for name in set(rows) if rows.count(name) > 1)


def test_env_example_has_no_comment_after_a_value():
    # An env-file loader (systemd, docker --env-file) would make the comment part of the value.
    for line in ENV_EXAMPLE.read_text().splitlines():
        if NAME.match(line) and "=" in line:
            assert "#" not in line.split("=", 1)[1], line


def test_benchmarks_results_table_is_generated_from_results_json():
    expected = table.markdown(json.loads(table.RESULTS_PATH.read_text()))
    assert table.block(BENCHMARKS.read_text()) == expected, (
        "docs/benchmarks.md's results differ from bench/results.json: "
        "run `python -m bench.table --write docs/benchmarks.md`"
    )


def test_results_table_write_replaces_only_the_block():
    document = f"before\n{table.START}\nold\n{table.END}\nafter\n"
    written = table.replace_block(document, "new")
    assert written == f"before\n{table.START}\nnew\n{table.END}\nafter\n"
    assert table.block(written) == "new"


def test_env_example_loaded_by_an_env_file_loader_gives_settings_that_start():
    # What systemd's EnvironmentFile or docker's --env-file would pass: every line a plain NAME=value.
    import os
    import subprocess
    import sys

    from dotenv import dotenv_values

    values = dotenv_values(ENV_EXAMPLE)
    assert set(values) == names_read(SETTINGS.read_text())
    assert all(value is not None and "#" not in value for value in values.values()), values
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "OPENAI_"))}
    env.update({name: value or "" for name, value in values.items()}, DJANGO_SETTINGS_MODULE="chatsite.settings")
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
