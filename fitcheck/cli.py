"""The fitcheck command line: thin typer commands over the public API.

Heavy modules (numpy, gguf, llama_cpp, mlx, scipy) are imported inside the
commands so `fitcheck --help` stays instant.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console

from .errors import FitcheckError

app = typer.Typer(
    help="Can this device run that LLM, at which quantization, and how fast?",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, non-zero exit."""
    err_console.print(f"fitcheck: error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def guarded(fn):
    """Turn fitcheck's own errors (and OS errors) into one-line messages."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FitcheckError as e:
            fail(str(e))
        except OSError as e:
            fail(f"{e.filename + ': ' if getattr(e, 'filename', None) else ''}{e.strerror or e}")
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.callback(invoke_without_command=True)
def main_callback(ctx: typer.Context) -> None:
    """With no command: the main job (for now, the list of commands)."""
    if ctx.invoked_subcommand is None:
        console.print(ctx.get_help())


@app.command()
@guarded
def inspect(
    path: str = typer.Argument(..., help="GGUF file (any part of a split model)."),
    json_out: bool = JSON_OPT,
) -> None:
    """Read a GGUF model's header and tensor table (never its tensor data)."""
    from .inspection import inspect_gguf
    from .render import inspect_view

    d = inspect_gguf(path)
    if json_out:
        emit_json(d)
    else:
        inspect_view(console, d)


def main() -> None:
    app()
