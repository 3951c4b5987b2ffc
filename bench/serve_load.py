"""`embed serve` under load: predict requests/s and p50/p99 latency at 1, 4 and 16 concurrent clients on 127.0.0.1,
and one HTTP predict against the same predict in process.

    python bench/serve_load.py [--run-dir RUN] [--workers 1] [--seconds 5] [--clients 1,4,16] [--plain] [--json]

It starts ``embed serve`` (``--no-access-log``) on a free 127.0.0.1 port, sends one 28x28 PNG digit to
``POST /predict`` from asyncio clients (each its own keep-alive connection; the request's raw HTTP/1.1 bytes
are built once, so the load generator takes little of the machine's CPU) for ``--seconds`` per level, at most
``--max-requests`` each, and stops the server: a bounded loop that ends by itself. The in-process figure is
:func:`embedder.predict` of the same decoded image on the same run (median of ``--repeats``), and the load
and decode (:func:`embedder.load_image`) on top of it. Aim: p50 <= 10 ms and p99 <= 50 ms at 4 clients.
``--plain`` hides httptools and uvloop from the server (uvicorn then runs h11 on asyncio, as it does without
``uvicorn[standard]``), so one machine compares both. Each level also reports the server's CPU time per
request (user + system, of every process of its session, from ``/proc``): on a machine shared with other
jobs, latency measures the queue for the CPU as much as the server, while its CPU time per request does not.
Without ``--run-dir`` it first trains a small run through the CLI (digits 0-4, 2 epochs, no download).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_run(workdir: Path) -> Path:
    run_dir = workdir / "run"
    command = ["train", "--dataset", "digits", "--classes", "0-4", "--epochs", "2", "--run-dir", str(run_dir), "-q"]
    subprocess.run([sys.executable, "-m", "cli.embed", *command], check=True)
    return run_dir


def digit_png(workdir: Path) -> Path:
    from PIL import Image

    from embedder import load_dataset

    path = workdir / "digit.png"
    Image.fromarray(load_dataset("digits").test_images[0].numpy()).save(path)  # 28x28, as the aim says
    return path


def hide_standard(folder: Path) -> dict[str, str]:
    """The environment of a server that cannot import httptools nor uvloop: modules by those names that refuse."""
    for name in ("httptools", "uvloop"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        refusal = f"raise ImportError('{name} hidden by bench/serve_load.py --plain')\n"
        (folder / name / "__init__.py").write_text(refusal)
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)}


@contextlib.contextmanager
def server(run_dir: Path, workers: int, log: Path, env: dict[str, str]):
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "cli.embed", "serve", "--run-dir", str(run_dir), "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*command, "--workers", str(workers), "--no-access-log", "--device", "cpu"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to about 2 minutes to start on a busy machine
            if proc.poll() is not None:
                raise SystemExit(f"embed serve exited {proc.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/health", timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise SystemExit(f"embed serve did not start:\n{log.read_text()}")
        yield port, proc.pid  # the server leads its own session (start_new_session)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def cpu_seconds(session: int) -> float:
    """User + system CPU seconds so far of every process in ``session`` (the server and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended meanwhile
            continue
        if int(fields[3]) == session:  # fields[3] is the session id; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def request_bytes(port: int, image: bytes) -> bytes:
    """One ``POST /predict`` of ``image`` as raw HTTP/1.1 bytes."""
    boundary = "tripletshotbench"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="digit.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def load(port: int, image: bytes, clients: int, seconds: float, most: int) -> tuple[list[float], float]:
    """Latencies (s) of every predict sent by ``clients`` concurrent keep-alive connections for ``seconds``."""
    latencies: list[float] = []
    request = request_bytes(port, image)
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline and len(latencies) < most:
                began = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - began)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise SystemExit(f"predict answered {head.splitlines()[0]!r}: {answer[:200]!r}")
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - began


def http_stack(plain: bool) -> str:
    """What uvicorn picks by itself: httptools and uvloop where installed (uvicorn[standard]), else h11, asyncio."""
    import importlib.util

    found = {name: not plain and importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop")}
    return f"{'httptools' if found['httptools'] else 'h11'}, {'uvloop' if found['uvloop'] else 'asyncio'}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def in_process(run_dir: Path, image_path: Path, repeats: int) -> tuple[float, float]:
    """Median seconds of :func:`embedder.predict` on the decoded image, and of decode + predict."""
    import torch

    from embedder import PredictConfig, Run, load_image, predict

    run = Run.load(run_dir, "cpu")
    image = load_image(image_path)[None]
    quiet = lambda _: None  # noqa: E731

    def timed(work) -> float:
        for _ in range(10):
            work()
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            work()
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    with torch.inference_mode():
        alone = timed(lambda: predict(run, image, ["digit.png"], PredictConfig(), log=quiet))
        decoded = timed(lambda: predict(run, load_image(image_path)[None], ["digit.png"], PredictConfig(), log=quiet))
    return alone, decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", help="a trained run (default: train a small one); it is only read")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    parser.add_argument("--max-requests", type=int, default=20_000, help="per concurrency level")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=200, help="in-process predicts timed")
    parser.add_argument("--plain", action="store_true", help="hide httptools and uvloop from the server")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    load_average = os.getloadavg()[0]  # other jobs on the machine: the noise in the latencies
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_dir = Path(args.run_dir) if args.run_dir else make_run(work)
        image_path = digit_png(work)
        image = image_path.read_bytes()
        rows = []
        env = hide_standard(work / "plain") if args.plain else {}
        with server(run_dir, args.workers, work / "server.log", env) as (port, session):
            asyncio.run(load(port, image, 4, 2.0, 400))  # warm-up: every worker's first requests
            for clients in levels:
                cpu = cpu_seconds(session)
                latencies, wall = asyncio.run(load(port, image, clients, args.seconds, args.max_requests))
                cpu = cpu_seconds(session) - cpu
                rows.append(
                    {
                        "clients": clients,
                        "requests": len(latencies),
                        "requests_per_s": len(latencies) / wall,
                        "p50_ms": 1000 * percentile(latencies, 50),
                        "p99_ms": 1000 * percentile(latencies, 99),
                        "server_cpu_ms_per_request": 1000 * cpu / len(latencies),
                    }
                )
        alone, decoded = in_process(run_dir, image_path, args.repeats)
    one = next((r for r in rows if r["clients"] == 1), rows[0])
    result = {
        "machine": machine(),
        "load_average_1min_at_start": load_average,
        "http": http_stack(args.plain),
        "workers": args.workers,
        "levels": rows,
        "in_process_predict_ms": 1000 * alone,
        "in_process_decode_and_predict_ms": 1000 * decoded,
        "http_over_in_process": one["p50_ms"] / (1000 * alone),
        "http_over_in_process_with_decode": one["p50_ms"] / (1000 * decoded),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"# embed serve, POST /predict of one 28x28 PNG, {args.workers} worker(s), {result['http']}")
    print(f"# {result['machine']}; load average {load_average:.1f} at start")
    print(f"{'clients':>7}  {'requests':>8}  {'req/s':>7}  {'p50 ms':>7}  {'p99 ms':>7}  {'server CPU ms/req':>17}")
    for r in rows:
        line = f"{r['clients']:>7}  {r['requests']:>8}  {r['requests_per_s']:>7.1f}"
        print(f"{line}  {r['p50_ms']:>7.2f}  {r['p99_ms']:>7.2f}  {r['server_cpu_ms_per_request']:>17.2f}")
    print(
        f"in process: predict {result['in_process_predict_ms']:.2f} ms, load_image + predict "
        f"{result['in_process_decode_and_predict_ms']:.2f} ms; one HTTP predict (p50, 1 client) is "
        f"{result['http_over_in_process']:.1f}x the predict, {result['http_over_in_process_with_decode']:.1f}x "
        "load_image + predict"
    )


if __name__ == "__main__":
    main()
