"""The docs cannot drift from the code: commands and options they name exist, the CLI reference is
current, and every figure in the README's results table is recorded in docs/ with a date and a command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kapao_edge.cli_reference import cli_commands, option_names, render

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "cpp_postproc" / "README.md"]

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"`([^`\n]+)`")
_INVOCATION = re.compile(r"kapao-edge\s+([a-z][a-z0-9-]*)")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")
# what ends one command inside a code snippet: shell operators, a comment, a markdown table cell
_COMMAND_END = re.compile(r"&&|;|\s\|\s|(?<!\\)\|\s|\s#")


def code_snippets(text: str) -> list[str]:
    """Fenced blocks (line continuations joined) and inline code spans outside them."""
    snippets = [block.replace("\\\n", " ") for block in _FENCE.findall(text)]
    outside = _FENCE.sub("", text)
    return snippets + _INLINE.findall(outside)


def invocations(text: str) -> list[tuple[str, str]]:
    """Every ``kapao-edge COMMAND args`` in a page's code, as (command, the rest of that command)."""
    found = []
    for snippet in code_snippets(text):
        for line in snippet.splitlines():
            for match in _INVOCATION.finditer(line):
                rest = _COMMAND_END.split(line[match.end():], maxsplit=1)[0]
                found.append((match.group(1), " ".join(rest.split())))
    return found


def test_the_invocation_parser_sees_what_a_reader_sees() -> None:
    page = (
        "Run `kapao-edge predict clip.mp4 --weights W.pt\\|--engine F.onnx [--track]` or\n"
        "```bash\nkapao-edge export --weights W \\\n    --imgsz 640  # --not-an-option\n"
        "kapao-edge info a.onnx && kapao-edge bench -e a.onnx | tee log\n```\n"
    )
    assert invocations(page) == [
        ("export", "--weights W --imgsz 640"),
        ("info", "a.onnx"),
        ("bench", "-e a.onnx"),
        ("predict", "clip.mp4 --weights W.pt\\|--engine F.onnx [--track]"),
    ]


@pytest.mark.parametrize("page", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_and_options_named_in_the_docs_exist(page: Path) -> None:
    commands = cli_commands()
    problems = []
    for command, rest in invocations(page.read_text(encoding="utf-8")):
        if command not in commands:
            problems.append(f"`kapao-edge {command}`: no such command")
            continue
        known = option_names(commands[command])
        problems += [f"`kapao-edge {command} {option}`: no such option" for option in _OPTION.findall(rest) if option not in known]
    assert not problems, f"{page.name}:\n" + "\n".join(sorted(set(problems)))


def test_the_docs_name_every_command() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in DOC_FILES)
    named = {command for command, _ in invocations(text)}
    assert set(cli_commands()) <= named, f"commands no page shows: {sorted(set(cli_commands()) - named)}"


def test_cli_reference_is_current() -> None:
    page = ROOT / "docs" / "cli.md"
    assert page.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is out of date: run `python -m kapao_edge.cli_reference docs/cli.md`"
    )


_FIGURE = re.compile(r"[−+-]?\d+(?:\.\d+)?(?:×|%)?")
_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def results_table_figures() -> list[str]:
    """The measured figures in the README's results table (numbers with a decimal point, ratios, %)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Results", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|") and not set(line) <= set("|-: ")]
    figures = []
    for row in rows[1:]:  # the header names columns
        for cell in row.strip("|").split("|")[1:]:  # the first cell names the row
            figures += [f for f in _FIGURE.findall(re.sub(r"`[^`]*`|\([^)]*\)|\[[^]]*\]", "", cell)) if "." in f or f[-1] in "×%"]
    return figures


def test_every_readme_figure_is_recorded_in_docs_with_date_and_command() -> None:
    figures = results_table_figures()
    assert len(figures) >= 8, figures
    pages = {p: p.read_text(encoding="utf-8") for p in DOC_FILES[1:]}
    pages[ROOT / "kapao_edge" / "assets" / "MODEL_CARD.md"] = (ROOT / "kapao_edge" / "assets" / "MODEL_CARD.md").read_text(encoding="utf-8")
    missing = []
    for figure in figures:
        plain = figure.lstrip("+")
        if not any(_recorded(text, plain) for text in pages.values()):
            missing.append(figure)
    assert not missing, f"README figures with no dated, commanded record in docs/: {missing}"


def _recorded(page: str, figure: str) -> bool:
    """The figure appears in a section (## heading to the next) that carries a date and a command."""
    for section in re.split(r"\n(?=#{1,3} )", page):
        if re.search(rf"(?<![\d.]){re.escape(figure)}(?![\d])", section) and _DATE.search(section) and (
            "python benchmarks/" in section or "kapao-edge " in section
        ):
            return True
    return False


_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_in_the_docs_resolve(page: Path) -> None:
    """A newcomer who follows a link lands on a page, not a 404."""
    targets = [t for t in _LINK.findall(page.read_text(encoding="utf-8")) if "://" not in t and not t.startswith("mailto:")]
    missing = sorted({t for t in targets if not (page.parent / t).exists()})
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_the_readme_python_camera_loop_runs_as_written(tmp_path: Path, capsys) -> None:
    """The README's Python block, verbatim except camera 0 -> a synthetic video with people walking."""
    import cv2

    from kapao_edge.data.synth.video import generate_video

    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S | re.M)
    assert len(blocks) == 1 and "pipeline.stream(0)" in blocks[0], "the README shows one Python camera loop"
    video = tmp_path / "walk.avi"
    frames = list(generate_video(seed=3, num_frames=6))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, frames[0].image.shape[1::-1])
    for frame in frames:
        writer.write(frame.image)
    writer.release()
    exec(compile(blocks[0].replace("pipeline.stream(0)", f"pipeline.stream({str(video)!r})"), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in printed] == [str(i) for i in range(6)]  # every frame, in order
    ids = [[int(i) for i in re.search(r"\[([-\d\s]*)\]", line).group(1).split()] for line in printed]
    assert any(i >= 1 for frame_ids in ids[3:] for i in frame_ids), printed  # confirmed people have ids
