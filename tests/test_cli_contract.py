"""The CLI error contract, table-driven: every command x every kind of bad input gives exit 2,
one line on stderr naming what was wrong, no traceback, and no output left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kapao_edge.cli import app

CASES = ["missing", "corrupt", "wrong_kind", "bad_size", "unwritable", "under_file", "not_kapao"]


def _refuses_files(folder: Path) -> bool:
    """Whether the file system itself refuses a new file in ``folder`` (for root too, unlike chmod)."""
    try:
        (folder / ".probe").open("x").close()
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


@pytest.fixture(scope="module")
def files(tmp_path_factory, reference_dir: Path, coco_sample_dir: Path) -> dict[str, Path]:
    """Real bad inputs: a truncated checkpoint, a text file, a foreign torch file, a foreign ONNX graph.

    The unwritable folder is a read-only one where that refuses (not root), else a /proc folder: root
    passes every permission check, but no one creates files in /proc. CI runs as root."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    root = tmp_path_factory.mktemp("contract")
    corrupt_pt = root / "corrupt.pt"
    corrupt_pt.write_bytes((reference_dir / "kapao_tiny_coco_random.pt").read_bytes()[:4096])
    corrupt_onnx = root / "corrupt.onnx"
    corrupt_onnx.write_bytes(b"\x08\x07garbage" * 64)
    text = root / "notes.txt"
    text.write_text("not a model\n")
    foreign_pt = root / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign_pt)
    node = helper.make_node("Relu", ["images"], ["predictions"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    foreign_onnx = root / "foreign.onnx"
    onnx.save(helper.make_model(graph), foreign_onnx)
    # A real, readable kapao ONNX is not needed: quantize checks the file, the output and the size
    # before it reads any metadata, so the foreign graph serves the output/size rows.
    data = root / "person_keypoints.json"
    data.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    blocker = root / "blocker"
    blocker.write_text("a file where a folder should be\n")
    locked = root / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    unwritable = next((d for d in (locked, Path("/proc/self")) if d.is_dir() and _refuses_files(d)), None)
    return {
        "good_pt": reference_dir / "kapao_tiny_coco_random.pt", "corrupt_pt": corrupt_pt, "corrupt_onnx": corrupt_onnx,
        "text": text, "foreign_pt": foreign_pt, "foreign_onnx": foreign_onnx, "data": data, "blocker": blocker,
        "unwritable": unwritable, "root": root, "image": sorted(coco_sample_dir.glob("*.jpg"))[0],
    }


def _model_for(command: str, case: str, f: dict[str, Path]) -> Path:
    onnx_input = command == "quantize"
    return {
        "missing": f["root"] / ("absent.onnx" if onnx_input else "absent.pt"),
        "corrupt": f["corrupt_onnx"] if onnx_input else f["corrupt_pt"],
        "wrong_kind": f["text"],
        "not_kapao": f["foreign_onnx"] if onnx_input else f["foreign_pt"],
    }.get(case, f["foreign_onnx"] if onnx_input else f["good_pt"])


def _output_for(command: str, case: str, f: dict[str, Path], tmp_path: Path) -> Path:
    name = "out" if command in ("demo", "predict") else "out.json" if command in ("val", "bench", "parity") else "out.onnx"
    if case == "unwritable":
        return f["unwritable"] / name
    if case == "under_file":
        return f["blocker"] / name
    return tmp_path / name


def _argv(command: str, model: Path, out: Path, size: str, f: dict[str, Path]) -> list[str]:
    m, o = str(model), str(out)
    return {
        "export": ["export", "-w", m, "--imgsz", size, "--out", o],
        "quantize": ["quantize", "--onnx", m, "--precision", "int8", "--calib", str(f["data"]), "--imgsz", size, "--out", o],
        "val": ["val", "-w", m, "--data", str(f["data"]), "--imgsz", size, "--save-json", o],
        "bench": ["bench", "-w", m, "--imgsz", size, "--iters", "1", "--warmup", "0", "--json", o],
        "parity": ["parity", "-w", m, "--data", str(f["data"]), "--imgsz", size, "--json", o],
        "demo": ["demo", "-w", m, "--images", "1", "--imgsz", size, "--out", o],
        "predict": ["predict", str(f["image"]), "-w", m, "--imgsz", size, "--out", o],
    }[command]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["export", "quantize", "val", "bench", "parity", "demo", "predict"])
def test_error_contract(command: str, case: str, files, tmp_path: Path) -> None:
    if case == "unwritable" and files["unwritable"] is None:
        pytest.skip("no folder here refuses new files to this user (root without /proc)")
    model = _model_for(command, case, files)
    out = _output_for(command, case, files, tmp_path)
    size = "100" if case == "bad_size" else "128"
    result = CliRunner().invoke(app, _argv(command, model, out, size, files))
    stderr = result.stderr.strip()
    assert result.exit_code == 2, (result.exit_code, result.output, repr(result.exception))
    assert "Traceback" not in result.output + stderr
    assert len(stderr.splitlines()) == 1, stderr
    named = {"bad_size": "100", "unwritable": out.name, "under_file": "blocker"}.get(case, model.name)
    assert named in stderr, stderr
    assert not out.exists()


@pytest.mark.parametrize("command", ["export", "val", "bench", "parity", "quantize", "predict"])
def test_imgsz_grammar_refuses_nonsense(command: str, files, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, _argv(command, files["good_pt"], tmp_path / "o.json", "big", files))
    assert result.exit_code == 2 and "N or HxW" in result.stderr


def _run_at_80(args: list[str]) -> str:
    """The CLI in a fresh process with COLUMNS=80, as a CI log would see it."""
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-c", "from kapao_edge.cli import app; app()", *args],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _assert_readable(text: str) -> None:
    assert "…" not in text, text  # nothing cut to 'kapao…' or '2569.…'
    assert max(len(line) for line in text.splitlines()) <= 80, text


def test_bench_table_at_80_columns(files, tmp_path: Path) -> None:
    long_name = tmp_path / "kapao_tiny_coco_random_with_a_long_descriptive_name.pt"
    long_name.write_bytes(files["good_pt"].read_bytes())
    text = _run_at_80(["bench", "-w", f"{long_name},{files['good_pt']}", "--imgsz", "128", "--iters", "1", "--warmup", "0"])
    _assert_readable(text)
    # At 80 columns each engine is a column (#1, #2) named in a legend above: names and numbers whole.
    lines = text.splitlines()
    assert any(line.startswith(f"#1 {long_name.name}:") for line in lines), text
    assert any(line.startswith(f"#2 {files['good_pt'].name}:") for line in lines), text
    ratios = next(line for line in lines if "vs 1st" in line).split("│")[2:4]
    assert [cell.strip() for cell in ratios][0] == "1.00x" and ratios[1].strip().endswith("x"), text


def test_demo_table_at_80_columns(tmp_path: Path) -> None:
    text = _run_at_80(["demo", "--images", "1", "--out", str(tmp_path / "demo")])
    _assert_readable(text)
    assert "PCK@0.2" in text and "AP50" in text
