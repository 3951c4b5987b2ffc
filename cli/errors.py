"""How both CLIs fail: one line on stderr, naming the flag, with the right exit code; never a traceback.

The library raises ordinary exceptions that name *parameters* (:mod:`embedder.errors`). Only here do
they become flags and exit codes: 2 for a bad option (like click's own usage errors), 1 for anything
else the user can fix, 130 for a training stopped by Ctrl-C or SIGTERM after its checkpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from embedder.errors import ConfigError, TripletshotError

from .options import as_flag

_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def flag(ctx: click.Context, param: str) -> str:
    """How the command in ``ctx`` spells the parameter ``param``: its option (``--run-dir``) if it has one."""
    for p in ctx.command.params:
        if p.name == param and isinstance(p, click.Option):
            if p.secondary_opts and p.default is True:  # a switch that is on: named by how to turn it off
                return p.secondary_opts[0]
            return max(p.opts, key=len)
    return as_flag(param)


def exit_code(exc: TripletshotError) -> int:
    from embedder.training.interrupt import Interrupted  # cheap: signal and threading only

    if isinstance(exc, Interrupted):
        return 130
    return 2 if isinstance(exc, ConfigError) else 1


class Command(click.Command):
    """A click command that turns the library's exceptions into one line naming its own flags, and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TripletshotError as exc:
            code = exit_code(exc)
            text = exc.render(lambda p: flag(ctx, p)) if isinstance(exc, ConfigError) else str(exc)
            click.echo(text if code == 130 else f"Error: {text}", err=True)  # 130: news, not an error
            ctx.exit(code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"Error: {exc.strerror or exc}{where}", err=True)
            ctx.exit(1)


class Group(click.Group):
    """A click group of :class:`Command`: errors are one line, ``Error: ...``, and the exit code."""

    command_class = Command

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


def info(message: str) -> None:
    """Messages for people go to stderr, so stdout stays clean for ``--json``."""
    click.echo(message, err=True)


def notes(quiet: bool) -> Callable[[str], None]:
    """:func:`info`, or nothing under ``--quiet``."""
    return _silent if quiet else info


def _silent(message: str) -> None:
    pass
