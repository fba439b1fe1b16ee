"""`dlpipe serve MODEL`: a trained model behind HTTP, in TensorFlow Serving's REST shapes.

    POST /v1/models/NAME:predict       {"instances": [...]} → {"predictions": [...]}
                                       {"inputs": {...}}    → {"outputs": {...}}
    GET  /v1/models/NAME               version status (one version, "1", AVAILABLE)
    GET  /v1/models/NAME/metadata      the serving signature: inputs, dtypes, shapes
    GET  /healthz                      {"status": "ok"}

(`/v1/models/NAME/versions/1...` and `/labels/...` paths are accepted too.) An instance is a
JSON object of raw inputs by input or column name, exactly as `dlpipe predict` reads a JSON
line — numbers, text, images as base64 text or {"b64": ...} — or, for a model with one
input, that input's value alone. Each instance goes through the same code as `dlpipe
predict` (prediction.Predictor: same conversion, same model runtime, same records), so the
answers are equal. Each prediction is the record `dlpipe predict --out x.jsonl` writes —
{"prediction": class name, "probabilities": {class: p}} — which TensorFlow Serving's row
format gives a model with several named outputs.

A bad request — malformed JSON, a missing or mistyped input, a body over `max_body` bytes —
is answered 400 {"error": ONE LINE}, the line `dlpipe predict` gives for the same row; the
server carries on. Concurrent requests are batched: a batch runs as soon as `max_batch`
examples wait or `max_wait_ms` after the first; one batch at a time runs on the model.
SIGTERM and SIGINT stop accepting connections, finish the requests in flight, then exit.

Starlette and uvicorn (the `serve` extra) are imported only by `dlpipe serve`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlpipe.errors import DataError, DlpipeError

MAX_BODY = 4 << 20
"""Default bound on a request body (bytes): 4 MiB."""


DRAIN_LIMIT = 64 << 20
"""A body over `max_body` is still read (and dropped) up to this size before the 400 is sent,
so that the client reads the answer; a larger one has its connection closed."""


class BadRequest(Exception):
    """Answered 400 with its one-line message."""


@dataclass
class Settings:
    name: str
    max_batch: int = 64
    """Most examples in one model call; 1 turns batching off."""
    max_wait_ms: float = 2.0
    """How long the first waiting request waits for others to join its batch."""
    max_body: int = MAX_BODY


@dataclass
class _Job:
    inputs: dict[str, np.ndarray]
    size: int
    future: asyncio.Future


@dataclass
class Stats:
    requests: int = 0
    examples: int = 0
    batches: int = 0
    bad: int = 0
    started: float = field(default_factory=time.monotonic)


class Batcher:
    """Joins the examples of concurrent requests into one model call (micro-batching)."""

    def __init__(self, run, max_batch: int, max_wait_ms: float, stats: Stats):
        self.run, self.max_batch, self.max_wait = run, max_batch, max_wait_ms / 1000.0
        self.stats = stats
        self.queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        # One model call at a time, off the event loop: requests keep being read meanwhile.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dlpipe-model")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """After the server stopped taking requests: run what waits, then end."""
        await self.queue.put(None)
        if self.task is not None:
            await self.task
        self.executor.shutdown(wait=True)

    async def submit(self, inputs: dict[str, np.ndarray]):
        size = len(next(iter(inputs.values())))
        job = _Job(inputs, size, asyncio.get_running_loop().create_future())
        await self.queue.put(job)
        return await job.future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        held: _Job | None = None
        while True:
            first = held or await self.queue.get()
            held = None
            if first is None:
                return
            jobs, size, stop = [first], first.size, False
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                try:
                    job = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self.queue.get(), remaining)
                    except TimeoutError:
                        break
                if job is None:
                    stop = True
                    break
                if size + job.size > self.max_batch:
                    held = job  # starts the next batch
                    break
                jobs.append(job)
                size += job.size
            await self._run(loop, jobs)
            if stop:
                while not self.queue.empty():  # none should come after the server stopped; answer any
                    job = self.queue.get_nowait()
                    if job is not None:
                        await self._run(loop, [job])
                return

    async def _run(self, loop, jobs: list[_Job]) -> None:
        names = list(jobs[0].inputs)
        merged = {name: np.concatenate([job.inputs[name] for job in jobs]) for name in names} \
            if len(jobs) > 1 else jobs[0].inputs
        try:
            output = await loop.run_in_executor(self.executor, self.run, merged)
        except Exception as err:  # noqa: BLE001 — every waiting request gets it, the loop carries on
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        self.stats.batches += 1
        start = 0
        for job in jobs:
            part = {k: v[start:start + job.size] for k, v in output.items()} if isinstance(output, dict) \
                else output[start:start + job.size]
            start += job.size
            if not job.future.done():
                job.future.set_result(part)


def instances(body, interface: dict) -> tuple[list[dict], bool]:
    """A TensorFlow Serving request body → (records, columnar). Row format: {"instances":
    [...]}; columnar: {"inputs": {name: [one value per example]}} or, for one input, a list."""
    if not isinstance(body, dict):
        raise BadRequest(f'expected a JSON object with "instances" or "inputs", got {type(body).__name__}')
    unknown = sorted(set(body) - {"instances", "inputs", "signature_name"})
    if unknown:
        raise BadRequest(f'unknown key {unknown[0]!r}; a request has "instances" or "inputs" '
                         '(and optionally "signature_name")')
    signature = body.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise BadRequest(f'signature_name: this model has one signature, "serving_default"; got {signature!r}')
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest('expected exactly one of "instances" (row format) or "inputs" (columnar format)')
    names = [entry["input"] for entry in interface["inputs"]]
    single = names[0] if len(names) == 1 else None
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise BadRequest('"instances": expected a non-empty list of examples')
        if single is not None:
            rows = [row if isinstance(row, dict) and _names_input(row, interface) else {single: row} for row in rows]
        return rows, False
    columns = body["inputs"]
    if single is not None and not (isinstance(columns, dict) and _names_input(columns, interface)):
        columns = {single: columns}
    if not isinstance(columns, dict):
        raise BadRequest('"inputs": expected an object of inputs by name, each a list with one value per example')
    lengths = {key: len(value) for key, value in columns.items() if isinstance(value, list)}
    if len(lengths) != len(columns):
        bad = next(key for key, value in columns.items() if not isinstance(value, list))
        raise BadRequest(f'"inputs": {bad!r}: expected a list with one value per example')
    if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        raise BadRequest(f'"inputs": every input needs the same, non-zero number of values; got {lengths}')
    count = next(iter(lengths.values()))
    return [{key: value[i] for key, value in columns.items()} for i in range(count)], True


def _names_input(mapping: dict, interface: dict) -> bool:
    keys = set(mapping)
    return any(entry["name"] in keys or entry["input"] in keys for entry in interface["inputs"])


_DTYPES = {"categorical": "DT_STRING", "ordinal": "DT_STRING", "text": "DT_STRING", "tokens": "DT_INT32"}


def metadata(name: str, interface: dict) -> dict:
    """GET /v1/models/NAME/metadata: TensorFlow Serving's signature description, plus the
    model card's interface under "dlpipe" (class names, value ranges)."""

    def shape(dims) -> dict:
        return {"dim": [{"size": str(d)} for d in dims], "unknown_rank": False}

    inputs = {entry["input"]: {"dtype": _DTYPES.get(entry["type"], "DT_FLOAT"),
                               "tensor_shape": shape([-1, *entry["shape"]]),
                               "name": f"serving_default_{entry['input']}:0"}
              for entry in interface["inputs"]}
    signature = {"inputs": inputs, "outputs": {}, "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": name, "signature_name": "", "version": "1"},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
            "dlpipe": interface}


def create_app(predictor, settings: Settings, stats: Stats | None = None, log=None):
    """The Starlette application serving `predictor` (a prediction.Predictor)."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    log = log or sys.stderr
    stats = stats or Stats()
    batcher = Batcher(predictor.run, settings.max_batch, settings.max_wait_ms, stats)
    interface, name = predictor.interface, settings.name

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)

    def servable(request: Request) -> tuple[str | None, JSONResponse | None]:
        """(the method after ':' or the sub-resource, or an error response) for /v1/models/..."""
        path = request.path_params["rest"]
        model, _, method = path.partition(":")
        parts = model.split("/")
        if parts[0] != name:
            return None, error(404, f"Servable not found for request: Latest({parts[0]})")
        extra = parts[1:]
        if extra[:1] in (["versions"], ["labels"]):
            if len(extra) < 2 or (extra[0] == "versions" and extra[1] != "1"):
                return None, error(404, f"Servable not found for request: {'/'.join(extra)} of {name}")
            extra = extra[2:]
        if len(extra) > 1 or (extra and extra[0] != "metadata") or (extra and method):
            return None, error(404, f"no such resource: {request.url.path}")
        return (method or (extra[0] if extra else "")), None

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        declared = int(declared) if declared and declared.isdigit() else None
        if declared is not None and declared > DRAIN_LIMIT:
            raise BadRequest(f"the request body has {declared:,} bytes; this server takes at most "
                             f"{settings.max_body:,} (dlpipe serve --max-body)")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= settings.max_body:
                chunks.append(chunk)
            elif size > DRAIN_LIMIT:
                break
        # A body over the bound is read to its end (up to DRAIN_LIMIT) and dropped: a client
        # still sending when the connection closes would see it reset instead of the 400.
        if size > settings.max_body:
            shown = f"{size:,} bytes" if size <= DRAIN_LIMIT else f"more than {DRAIN_LIMIT:,} bytes"
            raise BadRequest(f"the request body has {shown}; this server takes at most "
                             f"{settings.max_body:,} (dlpipe serve --max-body)")
        return b"".join(chunks)

    async def predict(request: Request) -> JSONResponse:
        try:
            raw = await body_of(request)
            try:
                body = json.loads(raw)
            except UnicodeDecodeError:
                raise BadRequest("malformed JSON: the body is not UTF-8 text") from None
            except ValueError as err:
                raise BadRequest(f"malformed JSON: {err}") from None
            rows, columnar = instances(body, interface)
            # Decoding images runs TensorFlow ops: off the event loop, like the model.
            inputs = await asyncio.to_thread(predictor.inputs, rows, lambda i: f"instances[{i}]")
            output = await batcher.submit(inputs)
            records = predictor.records(output)
        except (BadRequest, DataError, DlpipeError) as err:
            stats.bad += 1
            return error(400, str(err))
        except ClientDisconnect:
            return error(400, "the client closed the connection before sending the whole body")
        stats.requests += 1
        stats.examples += len(records)
        if columnar:
            keys = list(records[0]) if records else []
            return JSONResponse({"outputs": {key: [record[key] for record in records] for key in keys}})
        return JSONResponse({"predictions": records})

    async def models(request: Request) -> JSONResponse:
        method, problem = servable(request)
        if problem is not None:
            return problem
        try:
            if request.method == "POST":
                if method not in ("predict", "classify", "regress"):
                    return error(404, f"unknown method {method!r}; use :predict")
                return await predict(request)
            if method == "metadata":
                return JSONResponse(metadata(name, interface))
            if method:
                return error(405, f"{method} needs POST")
            return JSONResponse({"model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
        except Exception as err:  # noqa: BLE001 — a bug answers 500 in one line; the server carries on
            print(f"[dlpipe] serve: internal error on {request.url.path}: {type(err).__name__}: {err}",
                  file=log, flush=True)
            return error(500, f"internal error: {type(err).__name__}: {err}")

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "model": name})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.stop()

    routes = [Route("/healthz", healthz, methods=["GET"]),
              Route("/v1/models/{rest:path}", models, methods=["GET", "POST"])]
    return Starlette(routes=routes, lifespan=lifespan)


def _server_class():
    import contextlib
    import signal
    import threading

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that a SIGTERM or SIGINT ends a graceful shutdown with a
        normal return (uvicorn raises the signal again afterwards, which would kill the
        process before it says what it served): stopping is this command's normal end."""

        stopped_by: int | None = None

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            before = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in before.items():
                    signal.signal(sig, handler)

        def _stop(self, sig, frame) -> None:
            self.stopped_by = self.stopped_by or sig
            self.handle_exit(sig, frame)

    return Server


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8501, name: str | None = None,
          max_batch: int = 64, max_wait_ms: float = 2.0, max_body: int = MAX_BODY, allow_unsafe: bool = False,
          log=None) -> Stats:
    """Load MODEL and serve it until SIGTERM or SIGINT; returns what was served."""
    log = log or sys.stderr
    try:
        import uvicorn
        import starlette  # noqa: F401
    except ImportError as err:
        raise DlpipeError(f"dlpipe serve needs {err.name}: pip install 'dlpipe[serve]'") from None
    from dlpipe.prediction import Predictor

    predictor = Predictor.open(model, allow_unsafe=allow_unsafe)
    if predictor.output == "images":
        raise DlpipeError(f"{model}: a generator takes latent vectors, not raw records; dlpipe serve runs "
                          "classification, regression, forecasting, embedding and detection models")
    name = name or predictor.interface.get("name") or Path(model).resolve().name
    settings = Settings(name, max_batch, max_wait_ms, max_body)
    stats = Stats()
    app = create_app(predictor, settings, stats, log)
    if predictor.warning:
        print(f"[dlpipe] warning: {predictor.warning}", file=log, flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=30, limit_concurrency=512)
    server = _server_class()(config)
    batching = f"batches of up to {max_batch}, waiting {max_wait_ms:g} ms" if max_batch > 1 else "no batching"
    print(f"[dlpipe] serve: {name} ({predictor.output}, {len(predictor.interface['inputs'])} input(s); {batching}) "
          f"at http://{host}:{port}/v1/models/{name}:predict", file=log, flush=True)
    server.run()
    if not server.started:
        raise DlpipeError(f"cannot serve on {host}:{port} (the address is in use, or not this machine's)")
    seconds = time.monotonic() - stats.started
    by = f" by {signal.Signals(server.stopped_by).name}" if server.stopped_by else ""
    print(f"[dlpipe] serve: stopped{by} after {seconds:.0f} s: {stats.requests} requests, {stats.examples} examples "
          f"in {stats.batches} model calls, {stats.bad} bad requests", file=log, flush=True)
    return stats
