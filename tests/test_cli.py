"""Every command answers --help (exit 0, a usage line) without touching data."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import jobs

COMMANDS = sorted(m.name for m in pkgutil.iter_modules(jobs.__path__) if m.name not in ("common", "resample"))  # helpers, not commands


@pytest.mark.parametrize("name", COMMANDS)
def test_help(name, capsys):
    module = importlib.import_module(f"jobs.{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    assert f"python -m jobs.{name}" in capsys.readouterr().out
