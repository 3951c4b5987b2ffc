"""What both CLIs share: one-line errors with the right exit code, and progress messages."""

from __future__ import annotations

import sys
from typing import Any

import click

from embedder.errors import TripletshotError

_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


class Group(click.Group):
    """A click group that turns a :class:`TripletshotError` into ``Error: ...`` and its exit code.

    Ctrl-C exits 130; an ``OSError`` (disk full, permission denied) is one line and exit 1.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Like click's, but a usage error is one line (``Error: ...``, exit 2), not usage + hint + error."""
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except _NO_ARGS_IS_HELP as exc:  # bare `embed`: the help itself, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

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
