"""The ``kapao-edge`` command line: one Typer app, one module per command group in ``commands/``.

Command modules import their heavy dependencies inside the command body, so ``kapao-edge --help``
answers without loading torch.
"""

from __future__ import annotations

import typer

from kapao_edge import __version__

app = typer.Typer(
    name="kapao-edge",
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

    app.command("bench")(bench.bench)
    app.command("build")(build.build)
    app.command("export")(export.export)
    app.command("demo")(demo.demo)
    app.command("info")(info.info)
    app.command("parity")(parity.parity)
    app.command("predict")(predict.predict)
    app.command("quantize")(quantize.quantize)
    app.command("serve")(serve.serve)
    app.command("synth")(synth.synth)
    app.command("train")(train.train)
    app.command("val")(val.val)


_register()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
