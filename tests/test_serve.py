"""`embed serve` as a real server process on a free 127.0.0.1 port, spoken to over real HTTP.

Every endpoint; the answers equal the CLI's for the same files; 16 enrolments at once over 2 workers; kill -9
of a worker in the middle of an enrolment; and a matrix of bad requests, each a 4xx naming its field with the
run untouched. The run is the session's digits run, copied, since these tests write to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

try:
    import fastapi  # noqa: F401
    import httpx
except ImportError as missing:  # the serve extra: pip install -e '.[test,serve]'
    if os.environ.get("CI"):
        raise ImportError(f"{missing}: CI installs the serve extra, so this is a failure") from None
    pytest.skip(f"{missing} (pip install -e '.[test,serve]')", allow_module_level=True)

from PIL import Image  # noqa: E402

from embedder.data.images import load_image  # noqa: E402
from embedder.fewshot.openset import stored_statement  # noqa: E402
from embedder.runs.enrolment import indexed_classes  # noqa: E402
from embedder.runs.run import Run  # noqa: E402
from embedder.runs.store import RunBusyError, RunDir  # noqa: E402
from tests.runfiles import snapshot  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIMES = ("added", "updated")
http = SimpleNamespace(  # a slow shared machine: waits that only stop a hung test, never a measurement
    **{verb: functools.partial(getattr(httpx, verb), timeout=300) for verb in ("get", "post", "delete", "request")}
)  # differ between two enrolments of the same files, by design


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``embed serve`` in a subprocess; ``url`` once ``/health`` answers."""

    def __init__(self, run_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "tripletshot.cli.embed",
            "serve",
            "--run-dir",
            str(run_dir),
            "--port",
            str(self.port),
        ]
        self.log = run_dir.parent / f"server-{self.port}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*command, "--device", "cpu", "--no-access-log", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its workers go with it at stop()
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout  # a guard against a hung start, not a measurement
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited {self.proc.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the server did not answer in {timeout} s:\n{self.log.read_text()}")

    def workers(self) -> list[int]:
        """The pids of the worker processes (children of the supervisor), with more than one worker."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextlib.contextmanager
def serving(run_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    server = Server(run_dir, *args, env=env)
    try:
        yield server
    finally:
        server.stop()


def copy_run(source: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(source, into / "run"))


def digit_files(digits, folder: Path, rows: list[int], size: int = 84) -> list[Path]:
    """Test images of the digits dataset as PNG files, upscaled (the server and the CLI resize them back)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        path = folder / f"digit{row}_{int(digits.test_labels[row])}.png"
        Image.fromarray(digits.test_images[row].numpy()).resize((size, size)).save(path)
        paths.append(path)
    return paths


def uploads(paths: list[Path], field: str = "images") -> list[tuple[str, tuple[str, bytes, str]]]:
    return [(field, (p.name, p.read_bytes(), "image/png")) for p in paths]


def cli(*args: str, cwd: Path, module: str = "tripletshot.cli.embed") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True)


def cli_json(*args: str, cwd: Path, module: str = "tripletshot.cli.embed"):
    done = cli(*args, "--json", cwd=cwd, module=module)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def same(a, b) -> None:
    """JSON answers equal, floats to 1e-5 (two processes may sum in another order)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-5)
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    else:
        assert a == b


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in (*TIMES, "thumbnails")} for r in rows]


def run_files(run_dir: Path) -> dict[str, bytes]:
    """The run's files with their bytes; not the lock file, whose holder's pid any write (even refused) rewrites."""
    return {name: data for name, data in snapshot(run_dir).items() if name != ".lock"}


@pytest.fixture(scope="module")
def server(digits_run, tmp_path_factory) -> Iterator[Server]:
    """One worker on a copy of the digits run, with small limits so the limit tests stay small."""
    run_dir = copy_run(digits_run, tmp_path_factory.mktemp("served"))
    limits = ["--max-pixels", "1000000", "--max-bytes", "2000000", "--max-images", "8", "--lock-timeout", "1"]
    with serving(run_dir, *limits) as s:
        s.run_dir = run_dir
        yield s


# --- every endpoint, and the same answers as the CLI ---


def test_health_run_classes_docs_and_the_page(server, digits_run):
    health = http.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["vectors"] == len(Run.load(server.run_dir).index)
    info = http.get(server.url + "/run").json()
    meta = Run.load(server.run_dir).metadata
    assert info["dataset"] == "digits" and info["trained_classes"] == ["0", "1", "2", "3", "4"]
    assert info["threshold"] == meta["open_set"]["threshold"] and info["index"]["rule"] == meta["index"]["rule"]
    assert info["open_set"] == stored_statement(meta["open_set"]) and "false-accept rate" in info["open_set"]
    assert info["adds"] is True and info["auth"] == {"writes": False, "reads": False}
    classes = http.get(server.url + "/classes").json()
    same(untimed(classes), untimed(cli_json("index", "--run-dir", str(server.run_dir), cwd=server.run_dir.parent)))
    assert all(c["thumbnails"] >= 1 for c in classes)  # the train images nearest the centroids
    picture = http.get(server.url + "/classes/3/thumbnails/0")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    spec = http.get(server.url + "/openapi.json").json()
    assert {"/health", "/run", "/classes", "/predict", "/classes/{name}/images", "/classes/{name}", "/sum"} <= set(
        spec["paths"]
    )
    page = http.get(server.url + "/")
    assert page.status_code == 200 and '<canvas id="pad"' in page.text
    assert http.get(server.url + "/pool").json() == {"pool": None, "reason": None, "clusters": []}  # none given
    for asset in ("app.js", "style.css"):
        text = http.get(f"{server.url}/static/{asset}").text
        assert text and "http://" not in text and "https://" not in text  # no CDN: it works offline


def test_the_pool_page_shows_unclaimed_clusters_and_names_one(digits_run, tmp_path):
    from embedder.runs.pool import set_pool
    from embedder.runs.unclaimed import unclaimed_clusters

    run_dir = copy_run(digits_run, tmp_path)
    set_pool(run_dir, "rest", log=lambda _: None)
    with serving(run_dir) as s:
        pool = http.get(s.url + "/pool").json()
        want = unclaimed_clusters(Run.load(run_dir))
        assert pool["clusters"] == [{"images": c.images, "ids": c.ids} for c in want] and pool["reason"]
        first = pool["clusters"][0]["ids"][0]
        picture = http.get(f"{s.url}/pool/images/{first}")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert http.get(f"{s.url}/pool/images/999999").status_code == 404
        named = http.post(f"{s.url}/pool/images/{first}", data={"name": "found"})
        assert named.status_code == 200 and named.json()["name"] == "found", named.text
        assert "found" in [c["name"] for c in http.get(s.url + "/classes").json()]
        assert 'id="pool-card"' in http.get(s.url + "/").text


def test_docs_are_swagger_ui_from_this_server_never_a_cdn(server):
    from cli.serve.docs import swagger_ui_files

    if swagger_ui_files() is None and not os.environ.get("CI"):
        pytest.skip("fastapi-offline is not installed (pip install -e '.[serve]')")
    page = http.get(server.url + "/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # offline: every asset is this server's
    for asset in ("/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css", "/docs-assets/favicon.png"):
        assert asset in page.text
        loaded = http.get(server.url + asset)
        assert loaded.status_code == 200 and len(loaded.content) > 1000, asset
    assert '<a href="/docs">' in http.get(server.url + "/").text  # the page links to it
    assert http.get(server.url + "/redoc").status_code == 404  # FastAPI's ReDoc would load from a CDN


def test_where_swagger_ui_files_are_missing_there_is_no_docs_page_nor_link(digits_run, tmp_path):
    shim = tmp_path / "shim" / "fastapi_offline"  # a fastapi_offline without its files, first on the path
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    env = {"PYTHONPATH": os.pathsep.join([str(shim.parent), os.environ.get("PYTHONPATH", "")])}
    with serving(copy_run(digits_run, tmp_path), env=env) as s:
        assert http.get(s.url + "/docs").status_code == 404
        assert "/docs" not in http.get(s.url + "/").text
        assert "/predict" in http.get(s.url + "/openapi.json").json()["paths"]
    said = s.log.read_text()
    assert f"API described at {s.url}/openapi.json" in said and "/docs" not in said


def test_predict_equals_embed_predict(server, digits, tmp_path):
    files = digit_files(digits, tmp_path, [0, 1, 7, 12])
    answer = http.post(server.url + "/predict", params={"k": 3}, files=uploads(files))
    assert answer.status_code == 200, answer.text
    names = [p.name for p in files]
    expected = cli_json("predict", *names, "--k", "3", "--run-dir", str(server.run_dir), cwd=tmp_path)
    same(answer.json(), expected)
    assert [a["name"] for a in answer.json()] != ["unknown"] * 4


def test_sum_equals_adder_predict_and_refuses_what_is_not_a_digit(server, digits, tmp_path):
    candidates = digit_files(digits, tmp_path, list(range(8)))  # the server takes 8 at most
    asked = http.post(server.url + "/predict", files=uploads(candidates)).json()
    files = [next(p for p, a in zip(candidates, asked, strict=True) if a["label"] is not None)]  # a known digit
    answer = http.post(server.url + "/sum", files=uploads(files, "image"), data={"number": "7"})
    assert answer.status_code == 200, answer.text
    by_adder = cli_json(
        "predict", files[0].name, "7", "--run-dir", str(server.run_dir), cwd=tmp_path, module="tripletshot.cli.adder"
    )
    same(answer.json(), by_adder)
    assert answer.json()[0]["sum"] == answer.json()[0]["digit"] + 7
    square = tmp_path / "square.png"
    Image.fromarray(np.pad(np.full((20, 20), 255, np.uint8), 4)).save(square)
    enrolled = http.post(server.url + "/classes/square/images", files=uploads([square]))
    assert enrolled.status_code == 200, enrolled.text
    refused = http.post(server.url + "/sum", files=uploads([square], "image"), data={"number": "7"})
    assert refused.status_code == 422 and refused.json()["field"] == "image"
    assert "square" in refused.json()["error"] and "not a number" in refused.json()["error"]
    by_cli = cli(
        "predict", "square.png", "7", "--run-dir", str(server.run_dir), cwd=tmp_path, module="tripletshot.cli.adder"
    )
    assert by_cli.returncode == 1 and refused.json()["error"] in by_cli.stderr
    assert http.delete(server.url + "/classes/square").status_code == 200


def test_enrol_and_forget_equal_the_cli(server, digits, tmp_path):
    twin = copy_run(server.run_dir, tmp_path / "twin")  # the served run as it is now, to be changed by the CLI
    shots = digit_files(digits, tmp_path, [20, 21])
    enrolled = http.post(server.url + "/classes/Greek/alpha/images", files=uploads(shots))
    assert enrolled.status_code == 200, enrolled.text
    by_cli = cli_json(
        "enroll", "--label", "Greek/alpha", *[p.name for p in shots], "--run-dir", str(twin), cwd=tmp_path
    )
    same(untimed([enrolled.json()]), untimed(by_cli))
    classes = http.get(server.url + "/classes").json()
    same(untimed(classes), untimed(cli_json("index", "--run-dir", str(twin), cwd=tmp_path)))
    alpha = next(c for c in classes if c["name"] == "Greek/alpha")
    assert alpha["shots"] == 2 and alpha["thumbnails"] == 2
    picture = http.get(server.url + "/classes/Greek/alpha/thumbnails/1")
    kept = np.asarray(Image.open(io.BytesIO(picture.content)))
    assert np.array_equal(kept, load_image(shots[1]).numpy())  # what the embedder saw
    asked = http.post(server.url + "/predict", files=uploads(shots[:1]))
    same(asked.json(), cli_json("predict", shots[0].name, "--run-dir", str(twin), cwd=tmp_path))
    assert asked.json()[0]["name"] == "Greek/alpha"
    gone = http.delete(server.url + "/classes/Greek/alpha")
    assert gone.status_code == 200 and gone.json()["name"] == "Greek/alpha" and gone.json()["shots"] == 2
    said = cli("forget", "Greek/alpha", "--run-dir", str(twin), cwd=tmp_path)
    assert said.returncode == 0 and f"forgot Greek/alpha (label {gone.json()['label']}, 2 shot(s)" in said.stdout
    same(
        untimed(http.get(server.url + "/classes").json()),
        untimed(cli_json("index", "--run-dir", str(twin), cwd=tmp_path)),
    )


def readme_block(first: str) -> list[str]:
    """The lines of the README's bash block that holds ``first``, without their comments."""
    text = (ROOT / "README.md").read_text()
    code = next(b.split("```", 1)[0] for b in text.split("```bash\n")[1:] if first in b.split("```", 1)[0])
    return [line.split("  #", 1)[0].strip() for line in code.splitlines() if line.strip()]


def bash(line: str, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{line}\n{done.stderr[-2000:]}"
    return done.stdout


def test_the_readme_serve_tour_answers_what_its_comments_say(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for line in readme_block("python examples/draw_symbols.py symbols"):  # the tour before it, as written
        if not line.startswith("embed eval"):  # it only reads the run
            bash(line, tmp_path)
    serve, *curls = readme_block("embed serve --run-dir runs/symbols")
    assert serve == "embed serve --run-dir runs/symbols" and len(curls) == 4
    with serving(tmp_path / "runs" / "symbols") as s:
        said = [json.loads(bash(line.replace("localhost:8000", f"127.0.0.1:{s.port}"), tmp_path)) for line in curls]
    enrolled, predicted, classes, forgot = said
    assert (enrolled["name"], enrolled["label"], enrolled["shots"]) == ("star", 4, 3)  # "back under its label 4"
    assert [(p["image"], p["name"]) for p in predicted] == [("star-4.png", "star")]  # "star-4.png is a star again"
    assert len(predicted[0]["neighbours"]) == 3  # k=3
    assert [c["name"] for c in classes] == ["circle", "cross", "square", "triangle", "star"]
    assert all("thumbnails" in c for c in classes)  # "with thumbnail counts"
    assert (forgot["name"], forgot["label"]) == ("star", 4)


# --- bad requests: each a 4xx naming its field, the run untouched ---


def bad_requests(tmp_path: Path, digits) -> list[tuple[str, str, dict, int, str]]:
    """(method, path, httpx keyword arguments, status, field) for each bad request."""
    good = digit_files(digits, tmp_path, [5])
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("L", (1200, 1000)).save(huge)  # 1.2 M pixels, over the server's 1 M; a few kB of PNG
    blob = ("images", ("big.png", os.urandom(2_100_000), "image/png"))  # over the server's 2 MB body
    image = uploads(good)
    return [
        ("POST", "/predict", {}, 422, "images"),
        ("POST", "/predict", {"data": {"images": "a string, not a file"}}, 422, "images"),
        ("POST", "/predict", {"files": uploads([text])}, 422, "images"),
        ("POST", "/predict", {"files": uploads([huge])}, 413, "images"),
        ("POST", "/predict", {"files": [blob]}, 413, "body"),
        ("POST", "/predict", {"files": image * 9}, 413, "images"),
        ("POST", "/predict", {"files": image, "params": {"k": 0}}, 422, "k"),
        ("POST", "/predict", {"files": image, "params": {"threshold": 7}}, 422, "threshold"),
        ("POST", "/predict", {"files": image, "params": {"k": "many"}}, 422, "k"),
        ("POST", "/classes/%2Fetc%2Fpasswd/images", {"files": image}, 422, "name"),
        ("POST", "/classes/..%2F..%2Fescape/images", {"files": image}, 422, "name"),
        ("POST", "/classes/unknown/images", {"files": image}, 422, "name"),
        ("POST", "/classes/star/images", {}, 422, "images"),
        ("POST", "/classes/star/images", {"files": uploads([text])}, 422, "images"),
        ("POST", "/classes/star/images", {"files": uploads([huge])}, 413, "images"),
        ("DELETE", "/classes/no-such-class", {}, 404, "name"),
        ("POST", "/sum", {"files": uploads(good, "image"), "data": {"number": "seven"}}, 422, "number"),
        ("POST", "/sum", {"files": uploads(good, "image")}, 422, "number"),
        ("POST", "/sum", {"data": {"number": "7"}}, 422, "image"),
        ("GET", "/classes/3/thumbnails/99", {}, 404, "i"),
        ("GET", "/classes/nope/thumbnails/0", {}, 404, "name"),
        ("GET", "/run", {"headers": {"Host": "attacker.example"}}, 421, "Host"),
        ("DELETE", "/classes/3", {"headers": {"Origin": "http://attacker.example"}}, 403, "Origin"),
    ]


def test_bad_requests_are_4xx_naming_the_field_and_leave_the_run_untouched(server, digits, tmp_path):
    before = run_files(server.run_dir)
    for method, path, kwargs, status, field in bad_requests(tmp_path, digits):
        answer = http.request(method, server.url + path, **kwargs)
        assert (answer.status_code, answer.json().get("field")) == (status, field), (method, path, answer.text)
        assert answer.json()["error"] and "Traceback" not in answer.text
    assert run_files(server.run_dir) == before
    assert http.get(server.url + "/health").status_code == 200


# --- the doors: every attack in docs/serve.md's table, tried against the server, with the answer it says ---


def attack_table() -> dict[str, str]:
    """Each row of the "Attacks tried" table of docs/serve.md: the attack's name and the answer it says."""
    lines = (ROOT / "docs" / "serve.md").read_text().split("### Attacks tried", 1)[1].splitlines()
    rows = [line for line in lines[: next(i for i, x in enumerate(lines) if x.startswith("#"))] if line.startswith("|")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]  # past the header and its rule
    return {row[0]: row[-1] for row in cells}


def refused(answer: httpx.Response) -> str:
    assert "Traceback" not in answer.text
    return f"{answer.status_code} `{answer.json()['field']}`"


def one(answers: list[httpx.Response]) -> str:
    """The single answer every one of ``answers`` gave."""
    said = {refused(a) for a in answers}
    assert len(said) == 1, said
    return said.pop()


def cross_origin_write(t) -> str:
    headers = {"Origin": "http://attacker.example"}
    return one(
        [
            http.delete(t.server.url + "/classes/3", headers=headers),
            http.post(t.server.url + "/classes/star/images", files=t.image, headers=headers),
        ]
    )


def null_origin(t) -> str:
    headers = {"Origin": "null"}  # a sandboxed iframe on any site, or a file: page
    return one(
        [
            http.delete(t.server.url + "/classes/3", headers=headers),
            http.post(t.server.url + "/classes/star/images", files=t.image, headers=headers),
        ]
    )


def dns_rebinding(t) -> str:
    headers = {"Host": f"attacker.example:{t.server.port}"}  # a name of theirs that now resolves to 127.0.0.1
    paths = ["/", "/static/app.js", "/run", "/classes", "/openapi.json", "/docs", "/docs-assets/swagger-ui.css"]
    answers = [http.get(t.server.url + path, headers=headers) for path in paths]
    return one([*answers, http.post(t.server.url + "/predict", files=t.image, headers=headers)])


def private_schema(t) -> str:
    env = {"TRIPLETSHOT_TOKEN": "a-private-token-of-16-chars"}
    with serving(copy_run(t.digits_run, t.tmp / "private"), "--private", env=env) as s:
        return one([http.get(s.url + "/openapi.json"), http.get(s.url + "/docs")])


def oversize_body(t) -> str:
    blob = os.urandom(2_100_000)  # over the server's 2 MB
    said = http.post(t.server.url + "/predict", files=[("images", ("big.png", blob, "image/png"))])
    part = b'--x\r\nContent-Disposition: form-data; name="images"; filename="big.png"\r\n\r\n' + blob + b"\r\n--x--\r\n"

    def chunks() -> Iterator[bytes]:  # no Content-Length: refused as the stream passes the limit
        for i in range(0, len(part), 65536):
            yield part[i : i + 65536]

    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    return one([said, http.post(t.server.url + "/predict", content=chunks(), headers=headers)])


def bomb_png(width: int, height: int) -> bytes:
    """A real PNG of width x height black pixels: kilobytes that decode to width x height bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pack, rows = zlib.compressobj(9), b"\0" * (width + 1) * 1000  # each row: filter byte 0, then the pixels
    data = b"".join(pack.compress(rows) for _ in range(height // 1000)) + pack.flush()
    head = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def decompression_bomb(t) -> str:
    bomb = bomb_png(8000, 8000)  # 64 M pixels
    assert len(bomb) < 100_000 and Image.open(io.BytesIO(bomb)).size == (8000, 8000)
    files = [("images", ("bomb.png", bomb, "image/png"))]
    summed = http.post(t.server.url + "/sum", files=[("image", files[0][1])], data={"number": "1"})
    assert refused(summed) == "413 `image`"
    return one(
        [
            http.post(t.server.url + "/predict", files=files),
            http.post(t.server.url + "/classes/star/images", files=files),
        ]
    )


def path_like_label(t) -> str:
    names = ["%2Fetc%2Fpasswd", "..%2F..%2Fescape", "a%5Cx", ".%2Fhere", "unknown"]  # encoded: sent as typed
    answers = [http.post(f"{t.server.url}/classes/{name}/images", files=t.image) for name in names]
    assert not list(t.server.run_dir.parent.parent.glob("**/escape*"))
    return one(answers)


def too_many_images(t) -> str:
    return refused(http.post(t.server.url + "/predict", files=t.image * 9))  # the server takes 8


def slow_client(t) -> str:
    port = t.server.port
    head = socket.create_connection(("127.0.0.1", port))  # a request head that never ends
    head.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; bound")
    body = socket.create_connection(("127.0.0.1", port))  # a body that stops after its first bytes
    body.sendall(
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 5000\r\n\r\n--x\r\nContent-Disposition: form-data; "
    )
    try:
        others = http.post(t.server.url + "/predict", files=t.image)  # everyone else is answered meanwhile
        assert others.status_code == 200, others.text
        head.settimeout(120)  # only a guard against a hung test
        body.settimeout(120)
        assert head.recv(1000) == b""  # closed, with no answer
        stalled = b""
        while not stalled.endswith(b"}"):
            stalled += body.recv(1000)
        status, payload = stalled.split(b" ", 2)[1], json.loads(stalled.split(b"\r\n\r\n", 1)[1])
        assert status == b"408" and "stopped arriving" in payload["error"], stalled
    finally:
        head.close()
        body.close()
    return f"the head: the connection closed after 10 s; the body: 408 `{payload['field']}` after 10 s"


ATTACKS = {
    "Cross-origin write": cross_origin_write,
    "Null origin": null_origin,
    "DNS rebinding": dns_rebinding,
    "Private schema": private_schema,
    "Oversize body": oversize_body,
    "Decompression bomb": decompression_bomb,
    "Path-like label": path_like_label,
    "Too many images": too_many_images,
    "Slow client": slow_client,
}


def test_every_attack_in_the_docs_table_gets_the_answer_it_says_and_changes_nothing(
    server, digits, digits_run, tmp_path
):
    table = attack_table()
    assert set(table) == set(ATTACKS)
    image = uploads(digit_files(digits, tmp_path, [5]))
    t = SimpleNamespace(server=server, tmp=tmp_path, image=image, digits_run=digits_run)
    before = run_files(server.run_dir)
    for name, attack in ATTACKS.items():
        answer = attack(t)
        assert answer in table[name], (name, answer, table[name])
    assert run_files(server.run_dir) == before
    assert http.get(server.url + "/health").status_code == 200


def test_a_write_while_another_process_holds_the_lock_is_a_409_then_goes_through(server, digits, tmp_path):
    shots = uploads(digit_files(digits, tmp_path, [30]))
    before = run_files(server.run_dir)
    with RunDir(server.run_dir).lock():  # this test process is "another process" to the server
        answer = http.post(server.url + "/classes/locked/images", files=shots)
    assert answer.status_code == 409 and "in use" in answer.json()["error"]
    assert run_files(server.run_dir) == before
    again = http.post(server.url + "/classes/locked/images", files=shots)
    assert again.status_code == 200 and again.json()["shots"] == 1
    assert http.delete(server.url + "/classes/locked").status_code == 200


def test_a_busy_lock_is_a_typed_error(digits_run, tmp_path):
    run_dir = copy_run(digits_run, tmp_path)
    with RunDir(run_dir).lock():  # flock: a second open file of the same lock is refused, in one process too
        with pytest.raises(RunBusyError, match=f"in use by pid {os.getpid()}"), RunDir(run_dir).lock():
            pass
    with RunDir(run_dir).lock():  # free again
        pass


# --- tokens ---


def test_on_another_address_writes_need_the_token_and_reads_stay_open(digits_run, digits, tmp_path):
    run_dir = copy_run(digits_run, tmp_path)
    token = tmp_path / "token.txt"
    token.write_text("a-token-of-at-least-16-chars\n")
    refused = cli("serve", "--run-dir", str(run_dir), "--host", "0.0.0.0", cwd=tmp_path)
    assert refused.returncode == 2 and "--token-file" in refused.stderr and "Traceback" not in refused.stderr
    shots = uploads(digit_files(digits, tmp_path, [40]))
    with serving(run_dir, "--host", "0.0.0.0", "--token-file", str(token)) as s:
        before = run_files(run_dir)
        assert http.get(s.url + "/classes").status_code == 200
        assert http.post(s.url + "/predict", files=shots).status_code == 200  # a read, though a POST
        missing = http.post(s.url + "/classes/star/images", files=shots)
        assert missing.status_code == 401 and missing.json()["field"] == "Authorization"
        wrong = http.delete(s.url + "/classes/3", headers={"Authorization": "Bearer not-the-token-at-all"})
        assert wrong.status_code == 403 and wrong.json()["field"] == "Authorization"
        assert run_files(run_dir) == before
        bearer = {"Authorization": "Bearer a-token-of-at-least-16-chars"}
        assert http.post(s.url + "/classes/star/images", files=shots, headers=bearer).status_code == 200


def test_private_reads_need_the_token_too(digits_run, tmp_path):
    run_dir = copy_run(digits_run, tmp_path)
    env = {"TRIPLETSHOT_TOKEN": "another-token-16-chars-or-more"}
    with serving(run_dir, "--private", env=env) as s:
        for open_path in ("/health", "/", "/static/app.js"):  # the page and its assets hold no data
            assert http.get(s.url + open_path).status_code == 200, open_path
        bearer = {"Authorization": "Bearer another-token-16-chars-or-more"}
        for path in ("/classes", "/run", "/openapi.json", "/docs", "/classes/3/thumbnails/0"):
            refused = http.get(s.url + path)
            assert refused.status_code == 401 and refused.json()["field"] == "Authorization", path
            assert http.get(s.url + path, headers=bearer).status_code in (200, 404), path  # 404: no /docs files
        assert http.get(s.url + "/openapi.json", headers=bearer).json()["paths"]


# --- two workers: concurrency, reloads, kill -9 ---


def test_16_enrolments_at_once_over_2_workers_all_land_and_every_worker_sees_them(digits_run, digits, tmp_path):
    run_dir = copy_run(digits_run, tmp_path)
    files = digit_files(digits, tmp_path, list(range(50, 82)))
    before = len(Run.load(run_dir).index)
    with serving(run_dir, "--workers", "2", "--lock-timeout", "120") as s:

        def enrol(i: int) -> httpx.Response:
            return http.post(
                f"{s.url}/classes/sym{i}/images",
                files=uploads(files[2 * i : 2 * i + 2]),
            )

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(enrol, range(16)))
        assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers if a.status_code != 200]
        seen = {}
        for _ in range(200):  # fresh connections, so both workers answer some
            health = http.get(s.url + "/health").json()
            seen[health["worker"]] = health["vectors"]
            if len(seen) == 2:
                break
        assert len(seen) == 2 and set(seen.values()) == {before + 32}  # each worker reloaded the run
        listed = {c["name"]: c for c in http.get(s.url + "/classes").json()}
    run = Run.load(run_dir)  # loads clean: every file matches its checksum
    classes = {c.name: c for c in indexed_classes(run)}
    assert all(classes[f"sym{i}"].shots == 2 and listed[f"sym{i}"]["thumbnails"] == 2 for i in range(16))
    assert len({classes[f"sym{i}"].label for i in range(16)}) == 16


def lock_holder(run_dir: Path) -> int | None:
    """The pid holding the run's lock now, or None."""
    path = run_dir / ".lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 64, 0).decode(errors="replace").split()
        return int(text[1]) if len(text) == 2 and text[1].isdigit() else None
    finally:
        os.close(fd)
    return None


def test_kill_9_of_a_worker_during_an_enrolment_leaves_the_class_whole_or_absent(digits_run, digits, tmp_path):
    run_dir = copy_run(digits_run, tmp_path)
    files = uploads(digit_files(digits, tmp_path, [90, 91, 92]))
    stop, killed = threading.Event(), []

    def keep_enrolling(url: str) -> None:
        for i in range(200):
            if stop.is_set():
                return
            with contextlib.suppress(httpx.HTTPError):
                http.post(
                    f"{url}/classes/k{i}/images",
                    files=files,
                )

    with serving(run_dir, "--workers", "2") as s:
        workers = set(s.workers())
        sender = threading.Thread(target=keep_enrolling, args=(s.url,))
        sender.start()
        try:
            for _ in range(200_000):  # until a worker is caught holding the lock
                holder = lock_holder(run_dir)
                if holder in workers:
                    os.kill(holder, signal.SIGKILL)
                    killed.append(holder)
                    break
        finally:
            stop.set()
            sender.join()
    assert killed, "no worker was seen holding the run's lock"
    run = Run.load(run_dir)  # the run loads, every file whole
    enrolled = [c for c in indexed_classes(run) if c.name.startswith("k")]
    assert all(c.shots == 3 for c in enrolled)  # each class whole, or absent
    assert len(run.index) == len(Run.load(digits_run).index) + 3 * len(enrolled)


def test_serve_refuses_what_cannot_work_in_one_line(tmp_path):
    for args, code, words in [
        (["--run-dir", str(tmp_path / "none")], 1, "no run at"),
        (["--max-bytes", "0"], 2, "--max-bytes"),
        (["--private"], 2, "--private"),
    ]:
        done = cli("serve", *args, cwd=tmp_path)
        assert done.returncode == code and words in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_one_line_and_exit_2(digits_run, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", "--run-dir", str(digits_run), "--port", str(port), "--device", "cpu", cwd=tmp_path)
    said = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(said) == 1, done.stdout + done.stderr
    assert said[0] == f"Error: --port {port} on 127.0.0.1 is in use by another program: choose another one"
