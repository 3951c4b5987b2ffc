"""``embed serve``: the run over HTTP, with a page to draw, enrol and ask (:mod:`cli.serve`)."""

from __future__ import annotations

import os

import click

from ..errors import info
from ..options import device_option, run_dir_option
from .group import main


@main.command("serve")
@run_dir_option("The run to serve.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; any but loopback needs a token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="File whose first line is the bearer token writes need [default: $TRIPLETSHOT_TOKEN].",
)
@click.option("--private", is_flag=True, help="Reads need the token too (only /health and the page stay open).")
@click.option("--max-bytes", default=10 * 1024 * 1024, show_default=True, type=int, help="Largest request body.")
@click.option("--max-pixels", default=40_000_000, show_default=True, type=int, help="Largest image (width x height).")
@click.option("--max-images", default=32, show_default=True, type=int, help="Most images in one request.")
@click.option(
    "--lock-timeout", default=10.0, show_default=True, type=float, help="Seconds a write waits for the run's lock."
)
@click.option("--access-log/--no-access-log", default=True, help="Log each request on stderr.")
@device_option
def serve_command(
    run_dir: str, host: str, port: int, workers: int, token_file: str | None, access_log: bool, **options
) -> None:
    """Serve the run over HTTP: a JSON API (OpenAPI at /docs) and, at /, a page to draw a symbol, enrol it and ask.

    \b
    Example:
      embed serve                                   # http://127.0.0.1:8000
      embed serve --workers 2 --port 8080
      embed serve --host 0.0.0.0 --token-file token.txt
    """
    from ..serve.settings import ENV, ServeSettings, read_token

    settings = ServeSettings(run_dir, host=host, token=read_token(token_file), **options)  # checked before imports
    try:
        from ..serve import launch
    except ImportError:
        raise click.ClickException("embed serve needs the serve extra: pip install 'tripletshot[serve]'") from None
    from embedder.runs.store import RunDir

    from ..serve.docs import swagger_ui_files

    RunDir(run_dir).metadata()  # no run, or an unfinished one: one line now, not a traceback per worker
    sock = launch.bind(host, port)  # a port in use: one line and exit 2, before anything says "serving"
    os.environ[ENV] = settings.to_env()
    url = f"http://{host}:{sock.getsockname()[1]}"
    api = f"API at {url}/docs" if swagger_ui_files() else f"API described at {url}/openapi.json"
    info(f"serving {run_dir} at {url}/ ({workers} worker(s)); {api}")
    launch.run(sock, workers, access_log)
