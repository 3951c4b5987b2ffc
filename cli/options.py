"""Click options built from the library's own config tables, so each default and help text is written once.

``config_option(TrainConfig, "epochs")`` reads the field's default, type, choices and help from
:class:`embedder.config.TrainConfig`; nothing here imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

from embedder.config import DEFAULT_RUN_DIR, field_table

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def as_flag(param: str) -> str:
    return "--" + param.replace("_", "-")


def config_option(config: type, name: str, **overrides: Any) -> Decorator:
    """The ``--name`` option of a config dataclass field: its default, type and help come from the field.

    Parameter names marked ``{name}`` in the help text are shown as flags.
    """
    spec = field_table(config)[name]
    default = spec["default"]
    help_text = re.sub(r"\{([a-z_]+)\}", lambda m: as_flag(m.group(1)), spec["help"])
    kwargs: dict[str, Any] = {"default": default, "help": help_text, "show_default": default is not None}
    if "type" in spec:
        kwargs["type"] = spec["type"]
    elif "choices" in spec:
        kwargs["type"] = click.Choice(list(spec["choices"]))
    elif isinstance(default, bool):
        kwargs.update(is_flag=True, show_default=False)
    elif isinstance(default, list):  # class lists are typed as text: 0,1,2 or 0-4
        kwargs["default"] = ",".join(map(str, default))
    elif default is not None:
        kwargs["type"] = type(default)
    kwargs.update(overrides)
    return click.option(as_flag(name), name, **kwargs)


def config_options(config: type, *names: str) -> Decorator:
    """Several :func:`config_option` at once, in the order given."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            function = config_option(config, name)(function)
        return function

    return decorate


def run_dir_option(help: str = "The run folder.") -> Decorator:
    return click.option("--run-dir", default=DEFAULT_RUN_DIR, type=click.Path(), show_default=True, help=help)


DEVICE_HELP = "auto (CUDA if available), cpu, cuda or cuda:N."
device_option = click.option("--device", default="auto", show_default=True, help=DEVICE_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")


def json_text(value: Any) -> str:
    """``value`` as strict JSON, indented: a NaN or an infinity (no JSON number) is ``null``."""
    import json
    import math

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), indent=2, allow_nan=False)


quiet_option = click.option(
    "--quiet", "-q", is_flag=True, help="No progress and no notes on stderr: only the result, and errors."
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Data root [default: where the run was trained from, else $TRIPLETSHOT_DATA, else ~/.cache/tripletshot].",
)


class DatasetChoice(click.ParamType):
    """A dataset's name, or ``folder:PATH``: like ``click.Choice``, with the folder form beside the names."""

    name = "dataset"

    def __init__(self, names: list[str], folder: str) -> None:
        self.names, self.folder = sorted(names), folder

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join([*self.names, f"{self.folder}PATH"]) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value in self.names or (value.startswith(self.folder) and value[len(self.folder) :].strip()):
            return value
        choices = ", ".join(repr(n) for n in self.names)
        self.fail(f"{value!r} is not one of {choices}, or {self.folder}PATH for a folder of class folders", param, ctx)


def given(ctx: click.Context, *names: str) -> dict[str, Any]:
    """The options among ``names`` that the user typed (not defaults), with their values."""
    source = click.core.ParameterSource.COMMANDLINE
    return {n: ctx.params[n] for n in names if ctx.get_parameter_source(n) == source}
