"""The ``kapao-edge`` command line: one Typer app, one module per command group in ``commands/``.

Command modules import their heavy dependencies inside the command body, so ``kapao-edge --help``
answers without loading torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from typer.core import TyperCommand, TyperGroup

from kapao_edge import __version__

# What help shows for an option or argument that names no metavar of its own, by its type: click's
# upper-case words, never Typer's ``<str>``/``<bool>`` placeholders; flags show none.
FALLBACK_METAVARS = {str: "TEXT", int: "N", float: "NUM", Path: "PATH"}


def _fallback_metavar(param: Any) -> str | None:
    """A metavar from the parameter's type, for options that do not name their own."""
    if getattr(param, "is_flag", False):
        return ""
    if param.param_type_name == "argument":
        return param.name.upper()
    descriptor = getattr(param, "type_descriptor", None)  # Typer 0.2x vendors click; older ones use click's types
    if descriptor is None:
        word = {"text": "TEXT", "integer": "N", "float": "NUM", "path": "PATH"}.get(param.type.name, "VALUE")
        return f"{word}..." if param.multiple else word
    annotation = descriptor.annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is list and args:
        return f"{FALLBACK_METAVARS.get(args[0], 'VALUE')}..."
    return FALLBACK_METAVARS.get(args[0] if args else annotation, "VALUE")


def _repeated_values(param: Any, args: list[str]) -> list[str]:
    """The values ``param`` was given in ``args`` (``--x v`` and ``--x=v``), for the error message."""
    names = set(param.opts) | set(param.secondary_opts)
    values = []
    for index, token in enumerate(args):
        if token == "--":
            break
        name, eq, value = token.partition("=")
        if name in names:
            if getattr(param, "is_flag", False):
                values.append(token)
            elif eq:
                values.append(value)
            elif index + 1 < len(args):
                values.append(args[index + 1])
    return values


def refuse_repeats(command: Any, ctx: Any, args: list[str]) -> None:
    """A scalar option given twice is an error, not last-one-wins: ``--weights a --weights b`` would
    otherwise run ``b`` and say nothing. List options (``multiple``) accumulate and are exempt."""
    from kapao_edge.errors import InputError

    try:
        _, _, order = command.make_parser(ctx).parse_args(args=list(args))
    except Exception:  # malformed command lines are reported by click's own parse, which follows
        return
    seen: set[int] = set()
    for param in order:
        if param.param_type_name != "option" or param.multiple or param.count or param.is_eager:
            continue
        if id(param) in seen:
            name = max(param.opts, key=len)
            shown = ", then ".join(_repeated_values(param, args))
            raise InputError(f"{name} given twice{f' ({shown})' if shown else ''}: give it once")
        seen.add(id(param))


class _RealMetavars:
    """Help shows real metavars (``FILE``, ``N|HxW``), none for flags, and square brackets in help
    texts as written; mixed into the app's group and every command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # type: ignore[attr-defined]
            if param.metavar is None:
                param.metavar = _fallback_metavar(param)
            if param.param_type_name == "argument":  # its name is its metavar; no "<str>" type column
                param.display_type_rich = lambda ctx=None: None
            if getattr(param, "help", None):
                param.help = param.help.replace("[", "\\[")  # rich markup would eat "[default: ...]"

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""  # a flag: no "<bool>"
        return option


class KapaoGroup(_RealMetavars, TyperGroup):
    """The ``kapao-edge`` group itself (``--version``, ``--help``)."""


class KapaoCommand(_RealMetavars, TyperCommand):
    """The rules every command shares, in one place: a scalar option given twice is refused, and help
    is shaped by ``_RealMetavars``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            from rich.markup import escape

            from kapao_edge.commands._common import err_console
            from kapao_edge.errors import KapaoEdgeError

            try:
                refuse_repeats(self, ctx, args)
            except KapaoEdgeError as exc:
                err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
                raise typer.Exit(code=exc.exit_code) from None
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="kapao-edge",
    cls=KapaoGroup,
    help="Deploy KAPAO pose models: export, quantize, build engines, predict, validate, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"kapao-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Deploy KAPAO pose models: export, quantize, build engines, predict, validate, benchmark."""


def _register() -> None:
    from kapao_edge.commands import bench, build, demo, export, info, parity, predict, quantize, serve, synth, train, val

    for name, function in (
        ("bench", bench.bench), ("build", build.build), ("export", export.export), ("demo", demo.demo),
        ("info", info.info), ("parity", parity.parity), ("predict", predict.predict),
        ("quantize", quantize.quantize), ("serve", serve.serve), ("synth", synth.synth), ("train", train.train), ("val", val.val),
    ):
        app.command(name, cls=KapaoCommand)(function)


_register()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
