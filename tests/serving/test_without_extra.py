"""Without the [serve] extra: `serve` and `predict --server` say what to install, exit 2, load nothing.

Runs everywhere: where PyTriton is installed, the child process hides it (an import of it fails).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HIDE = "import sys; sys.modules['pytriton'] = None; sys.modules['tritonclient'] = None; "


def _cli(*args: str) -> subprocess.CompletedProcess:
    code = HIDE + "from kapao_edge.cli import main; sys.argv = ['kapao-edge', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    ["serve", "--weights", "bundled"],
    ["predict", "{shared}", "--server", "http://127.0.0.1:8000", "--out", "{out}"],
])
def test_missing_extra_is_one_clear_line(args, tmp_path):
    args = [a.format(shared=str(tmp_path), out=str(tmp_path / "out")) for a in args]
    (tmp_path / "frame.jpg").write_bytes(b"")  # predict opens its source first; an empty folder would fail there
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    assert 'pip install -e ".[serve]"' in result.stderr and "/usr/bin/python3.11" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_core_import_does_not_need_the_extra():
    result = subprocess.run([sys.executable, "-c", HIDE + "import kapao_edge, kapao_edge.serving, kapao_edge.cli"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
