"""The CLI reference (docs/cli.md), generated from the Typer app so that the docs cannot drift from it.

    python -m kapao_edge.cli_reference docs/cli.md     # rewrite the page
    python -m kapao_edge.cli_reference                 # print it

``tests/test_docs.py`` fails when the page differs from what this renders, and when README.md or a
page in docs/ names a command or an option that the app does not have.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, get_args, get_origin

import typer.main

HEADER = """# CLI reference

Generated from the Typer app by `python -m kapao_edge.cli_reference docs/cli.md`; do not edit by hand
(`tests/test_docs.py` fails when this page and the app differ). `kapao-edge COMMAND --help` prints the
same, formatted for the terminal. Sizes take one grammar everywhere (`640` or `480x640`); list options
take repeats and commas alike; other options given twice are refused. Every command answers bad input
with one line on stderr and exit code 2: [the CLI contract](cli-contract.md).
"""


def cli_commands() -> dict[str, Any]:
    """The app's commands by name, in the order ``kapao-edge --help`` lists them.

    Parameters are read by duck typing (``param_type_name``, ``opts``): Typer vendors its own click
    from 0.2x on, so ``click``'s classes are not the ones the app is made of."""
    from kapao_edge.cli import app

    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _is_option(param: Any) -> bool:
    return param.param_type_name == "option"


def option_names(command: Any) -> set[str]:
    """Every spelling of every option of ``command`` (``--save-json``, ``--no-save-json``, ``-w``, ...)."""
    names = {"--help"}
    for param in command.params:
        if _is_option(param):
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


def _cell(text: Any) -> str:
    """One table cell: one line, pipes escaped, rich's ``\\[`` escapes (see ``KapaoCommand``) undone."""
    return " ".join(str(text).split()).replace("\\[", "[").replace("|", "\\|")


def _first_paragraph(text: str | None) -> str:
    return _cell((text or "").strip().split("\n\n")[0])


def _placeholder(param: Any) -> str:
    if _is_option(param) and param.is_flag:
        return ""
    if param.metavar:
        return param.metavar
    if not _is_option(param):
        return param.name.upper()
    click_type = getattr(param, "type", None)  # click's Option (older Typer)
    if click_type is not None:
        return click_type.name.upper()
    return _type_name(param.type_descriptor.annotation)


def _type_name(annotation: Any) -> str:
    """TEXT, INTEGER, FLOAT, PATH (``...`` for lists): click's names, for Typer's own parameters."""
    origin, args = get_origin(annotation), [a for a in get_args(annotation) if a is not type(None)]
    if origin is not None and args:
        inner = _type_name(args[0])
        return f"{inner}..." if origin in (list, tuple) else inner
    names = {str: "TEXT", int: "INTEGER", float: "FLOAT", Path: "PATH", bool: "BOOLEAN"}
    return names.get(annotation, getattr(annotation, "__name__", "VALUE").upper())


def _default(param: Any) -> str:
    if not _is_option(param) or param.required:
        return "required" if param.required else ""
    default = param.default
    if param.is_flag and param.secondary_opts:
        return param.opts[0] if default else param.secondary_opts[0]
    if default is None or default == () or default == []:
        return ""
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"`{default}`"


def render() -> str:
    """Markdown for every command: usage, the help text's first paragraph, one row per parameter."""
    parts = [HEADER]
    commands = cli_commands()
    parts.append("| command | what it does |\n|---|---|")
    parts.extend(f"| [`{name}`](#kapao-edge-{name}) | {_first_paragraph(cmd.help)} |" for name, cmd in commands.items())
    for name, command in commands.items():
        arguments = [p for p in command.params if not _is_option(p)]
        usage = " ".join(["kapao-edge", name, "[OPTIONS]", *(_placeholder(p) for p in arguments)])
        parts.append(f"\n## kapao-edge {name}\n\n`{usage}`\n\n{_first_paragraph(command.help)}\n")
        parts.append("| parameter | value | default | meaning |\n|---|---|---|---|")
        for param in command.params:
            if not _is_option(param):
                spelled = _placeholder(param)
            else:
                spelled = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
            help_text = getattr(param, "help", None) or ""
            parts.append(f"| {spelled} | {_cell(_placeholder(param))} | {_default(param)} | {_cell(help_text)} |")
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if not argv:
        sys.stdout.write(text)
        return 0
    from kapao_edge.utils.io import write_text_atomic

    write_text_atomic(Path(argv[0]), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
