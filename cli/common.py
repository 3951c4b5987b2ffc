"""What both CLIs share: one-line errors with the right exit code, and progress messages."""

from __future__ import annotations

from typing import Any

import click

from embedder.errors import TripletshotError


class Group(click.Group):
    """A click group that turns a :class:`TripletshotError` into ``Error: ...`` and its exit code.

    Ctrl-C exits 130; an ``OSError`` (disk full, permission denied) is one line and exit 1.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TripletshotError as exc:
            # 130: stopped on request (and checkpointed) -- news, not an error
            click.echo(str(exc) if exc.exit_code == 130 else f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)


def info(message: str) -> None:
    """Progress for people goes to stderr, so stdout stays clean for ``--json``."""
    click.echo(message, err=True)


DEVICE_HELP = "auto (CUDA if available), cpu, cuda or cuda:N."


def device_option(default: str = "auto"):
    return click.option("--device", default=default, help=DEVICE_HELP)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Data root [default: $TRIPLETSHOT_DATA, else ~/.cache/tripletshot].",
)
