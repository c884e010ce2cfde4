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


@app.command()
@guarded
def probe(
    quick: bool = typer.Option(False, "--quick", help="Fewer repetitions (under 15 s)."),
    save: bool = typer.Option(True, "--save/--no-save", help="Save the profile as device 'this'."),
    json_out: bool = JSON_OPT,
) -> None:
    """Measure this device: RAM and limits, CPU, memory bandwidth, compute, accelerators, disk, llama.cpp."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from . import profile as prof_mod
    from .render import profile_view
    from probes import PROBES

    progress_console = err_console if json_out else console
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=progress_console, transient=True) as bar:
        task = bar.add_task("probing", total=len(PROBES))

        def on_step(name: str) -> None:
            done = list(PROBES).index(name) if name in PROBES else 0
            bar.update(task, completed=done, description=f"probing {name}")

        prof = prof_mod.collect(quick=quick, on_step=on_step)
        bar.update(task, completed=len(PROBES))
    saved = None
    if save:
        try:
            saved = prof_mod.save(prof)
        except FitcheckError as e:
            prof["warnings"].append(f"profile not saved: {e}")
    if json_out:
        emit_json(prof)
    else:
        profile_view(console, prof)
        if saved:
            console.print(f"saved as device 'this': {saved}")
    for w in prof["warnings"]:
        err_console.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    app()
