"""Shared plumbing for CLI commands."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import typer
from rich.console import Console

from kapao_edge.errors import KapaoEdgeError

if TYPE_CHECKING:
    from rich.table import Table

F = TypeVar("F", bound=Callable)

console = Console()
err_console = Console(stderr=True)


def user_errors(func: F) -> F:
    """Turn a ``KapaoEdgeError`` into one red line on stderr and its exit code, no traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KapaoEdgeError as exc:
            from rich.markup import escape

            # escaped: messages quote user text and commands such as pip install -e ".[serve]"
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=exc.exit_code) from None
        except ModuleNotFoundError as exc:
            if exc.name != "torch":
                raise
            err_console.print(f"[bold red]error:[/] {TORCH_NEEDED.format(command=func.__name__)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


TORCH_NEEDED = (
    "`kapao-edge {command}` needs PyTorch, which is not installed: pip install torch (on Jetson, NVIDIA's "
    "torch wheel for your JetPack), or run it on another machine and copy the file; commands given an "
    "--engine (.onnx or .engine) run without it"
)


IMGSZ_HELP = "Network input size: N (square) or HxW, multiples of 64 [default: the size the model file documents, else its fixed shape, else 640]."
IMGSZ_METAVAR = "N|HxW"
FALLBACK_IMGSZ = 640


def parse_imgsz(text: str | None, *, network: bool = True) -> int | tuple[int, int] | None:
    """The one ``--imgsz`` grammar: '448' -> 448, '480x640' -> (480, 640); None stays None (use the model's).

    ``network=False`` for sizes that are not a network input (``synth`` scenes): any positive size."""
    from kapao_edge.data import check_input_size
    from kapao_edge.errors import InputError

    if text is None:
        return None
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"--imgsz must be N or HxW (e.g. 448 or 480x640), got {text!r}") from None
    if len(values) not in (1, 2) or min(values) <= 0:
        raise InputError(f"--imgsz must be N or HxW (e.g. 448 or 480x640), got {text!r}")
    size = values[0] if len(values) == 1 else (values[0], values[1])
    if network:
        check_input_size(size)  # refuses sizes the P6 grid cannot tile, for every command alike
    return size


def long_side(size: int | tuple[int, int], command: str) -> int:
    """Commands that letterbox to a square need one number; HxW is accepted when H == W."""
    from kapao_edge.errors import InputError

    if isinstance(size, int):
        return size
    if size[0] != size[1]:
        raise InputError(f"{command} letterboxes to a square input: give --imgsz N (e.g. {max(size)}), got {size[0]}x{size[1]}")
    return size[0]


def model_imgsz(model_file: str | Path | None) -> int | tuple[int, int]:
    """Default input size: the size the model file documents (checkpoint, ONNX metadata or a plan's
    sidecar), then the file's fixed shape, then 640 (``EngineMetadata.documented_imgsz``), so nobody
    calibrates or evaluates at a size the model was not made for. Unreadable files give 640 here and
    are reported by the command that opens them."""
    if model_file is None:
        return FALLBACK_IMGSZ
    text = str(model_file)
    try:
        if text.endswith(".onnx"):
            import onnx

            from kapao_edge.export.metadata import parse_metadata, read_onnx_metadata

            raw = read_onnx_metadata(onnx.load(text, load_external_data=False))
            metadata = parse_metadata(raw, source=text) if raw is not None else None
        elif text.endswith((".engine", ".plan")):
            from kapao_edge.engines.tensorrt_backend import read_sidecar

            metadata = read_sidecar(text)[0]
        else:
            from kapao_edge.model import read_checkpoint

            loaded = read_checkpoint(text)
            return loaded.documented_imgsz or FALLBACK_IMGSZ
    except ModuleNotFoundError as exc:
        if exc.name == "torch":  # a checkpoint on a machine without torch: the command says so itself
            return FALLBACK_IMGSZ
        raise
    except Exception:
        return FALLBACK_IMGSZ
    if metadata is None:
        return FALLBACK_IMGSZ
    fixed = metadata.default_hw
    if metadata.documented_imgsz is not None:
        return metadata.documented_imgsz
    if fixed is not None:
        return fixed if fixed[0] != fixed[1] else fixed[0]
    return FALLBACK_IMGSZ


def split_list(values: list[str] | None) -> list[str]:
    """List options take repeats and commas alike: ``-e a -e b,c`` -> [a, b, c]; nothing is dropped."""
    return [part.strip() for value in values or [] for part in str(value).split(",") if part.strip()]


def check_writable(target: Path | None) -> None:
    """Fail before the work, not after it, when an output cannot be written (unwritable, or under a file)."""
    from kapao_edge.errors import InputError
    from kapao_edge.utils.io import can_create_in

    if target is None:
        return
    target = Path(target)
    if target.is_dir() and target.suffix:
        raise InputError(f"cannot write to {target}: it is a directory; give a file path")
    existing = target.parent if str(target.parent) else Path(".")
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot write to {target}: {existing} is a file, not a folder; choose another output path")
    if not can_create_in(existing):
        raise InputError(f"cannot write to {target}: {existing} is not writable; choose another output path")


def folding_table(title: str, columns: list[str], *, left: tuple[str, ...] = ()) -> "Table":
    """A table whose cells fold onto more lines instead of being cut to 'kapao…' in narrow CI logs."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(name, justify="left" if name in left else "right", overflow="fold")
    return table
