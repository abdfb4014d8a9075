"""An OpenAI-compatible HTTP server (FastAPI) over the continuous-batching engine, and a local chat page.

    app = create_app(served(run, cfg), api_key=None)       # run: run_dir.load_run(...), cfg: configs/serve.py
    uvicorn.run(app, host="127.0.0.1", port=8000)      # experiments/serve.py does this

Endpoints: POST /v1/completions and /v1/chat/completions (stream: true gives server-sent events as OpenAI
sends them, ending with `data: [DONE]`), GET /v1/models, GET /health, GET /metrics (Prometheus), GET /
(the chat page). With an API key every /v1 path and /metrics need `Authorization: Bearer KEY`.

Privacy: request and response text is never logged; a log line carries a request's id, token counts,
timings and finish reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
import secrets
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from biomed_jax.inference.engine import Engine, EngineStopped, QueueFull, Request as EngineRequest, Token
from biomed_jax.inference.text import TextStream
from biomed_jax.serving.api import ApiError, ChatRequest, CompletionRequest, Sampling, parse_chat, parse_completion
from biomed_jax.serving.chat import STOP_STRINGS, render_chat, template_style
from biomed_jax.serving.metrics import Metrics
from biomed_jax.inference.generate import Generator

log = logging.getLogger("biomed_jax.serving")
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "index.html")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclasses.dataclass
class Served:
    """What the server serves: the engine over a model, its tokenizer and its name; the chat template;
    stop tokens every completion has (the end-of-text token); the chat default for max_tokens."""

    name: str
    engine: Engine
    tokenizer: Any
    template: str = "plain"
    stop_tokens: tuple[int, ...] = ()
    default_max_tokens: int = 256
    created: int = dataclasses.field(default_factory=lambda: int(time.time()))


def served(run, cfg, mesh=None) -> Served:
    """A loaded run (run_dir.load_run) served as configs/serve.py's `cfg` says: its Generator (params laid
    out per layer for decoding) inside an Engine of cfg.slots rows, compiled up front when cfg.warmup."""
    model_cfg = run.model_cfg.replace(dtype=cfg.dtype) if cfg.dtype else run.model_cfg
    generator = Generator(model_cfg, run.params, mesh)
    run.params = None   # the generator keeps its own copy
    engine = Engine(generator, slots=cfg.slots, max_len=cfg.max_len, queue_size=cfg.queue_size)
    if cfg.warmup:
        engine.warmup()
    name = cfg.model_name or os.path.basename(os.path.normpath(run.path))
    stop = (run.eos_id,) if cfg.stop_at_eos and run.eos_id is not None else ()
    return Served(name=name, engine=engine, tokenizer=run.tokenizer, template=template_style(run.template, cfg.template),
                  stop_tokens=stop, default_max_tokens=cfg.default_max_tokens)


def check_bind(host: str, api_key: str | None) -> None:
    """Binding beyond this machine needs an API key: a one-line error otherwise."""
    if host not in LOCAL_HOSTS and not api_key:
        raise ValueError(f"--host={host} makes the server reachable from other machines; give an API key "
                         "(--api_key or the BIOMED_API_KEY environment variable) or bind 127.0.0.1")


def create_app(served: Served, api_key: str | None = None, grace_s: float = 30.0) -> FastAPI:
    """The FastAPI app. The engine is started with the app and shut down (requests in flight finish for
    up to grace_s seconds) when the server stops."""
    metrics = Metrics(served.engine.load)

    async def lifespan(app):
        served.engine.start()
        yield
        await asyncio.to_thread(served.engine.shutdown, grace_s)

    app = FastAPI(title="biomed_jax", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def count_and_authorize(request: Request, call_next):
        path = request.url.path
        if api_key and (path.startswith("/v1/") or path == "/metrics"):
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
                response = _error_response(ApiError(401, "missing or wrong API key (send Authorization: Bearer KEY)",
                                                    code="invalid_api_key"))
                metrics.requests.labels(path, "401").inc()
                return response
        response = await call_next(request)
        known = path if path in _PATHS else "other"
        metrics.requests.labels(known, str(response.status_code)).inc()
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return _error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        kind = "not_found" if error.status_code == 404 else "invalid_request_error"
        return _error_response(ApiError(error.status_code, f"{request.method} {request.url.path}: {error.detail}",
                                        kind=kind))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception):
        log.error("internal error on %s: %s", request.url.path, type(error).__name__)
        return _error_response(ApiError(500, "internal server error", kind="server_error"))

    @app.get("/")
    async def page():
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/health")
    async def health():
        waiting, busy = served.engine.load()
        return {"status": "ok", "model": served.name, "slots": served.engine.slots, "busy_slots": busy,
                "queue_depth": waiting, "max_len": served.engine.max_len, "auth_required": bool(api_key)}

    @app.get("/metrics")
    async def prometheus():
        return Response(metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served.name, "object": "model", "created": served.created,
                                            "owned_by": "biomed_jax", "max_model_len": served.engine.max_len}]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        parsed = parse_completion(await _json(request))
        _check_model(parsed.model, served)
        prompts = [served.tokenizer.encode(p).ids if isinstance(p, str) else list(p) for p in parsed.prompts]
        return await _respond(request, served, metrics, "completions", prompts, parsed, ())

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        parsed = parse_chat(await _json(request))
        _check_model(parsed.model, served)
        prompt = served.tokenizer.encode(render_chat(served.template, parsed.messages)).ids
        return await _respond(request, served, metrics, "chat", [prompt], parsed, STOP_STRINGS[served.template])

    return app


_PATHS = ("/", "/health", "/metrics", "/v1/models", "/v1/completions", "/v1/chat/completions")


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON: {err}", code="invalid_json") from None


def _check_model(model: str, served: Served) -> None:
    if model != served.name:
        raise ApiError(400, f"model: {model!r} is not served here; this server serves {served.name!r}",
                       param="model", code="model_not_found")


class _Completion:
    """One prompt's completion in flight: the engine's callbacks (engine thread) turn tokens into text
    deltas and hand them to the request's asyncio queue."""

    def __init__(self, index: int, prompt: list[int], sampling: Sampling, seed: int, served: Served, stop_strings,
                 loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, arrived: float):
        self.index, self.prompt, self.served, self.loop, self.queue = index, prompt, served, loop, queue
        self.arrived = arrived
        self.stop_tokens = set(served.stop_tokens)
        self.text = TextStream(served.tokenizer, self.stop_tokens, tuple(stop_strings) + sampling.stop)
        self.tokens: list[Token] = []
        max_tokens = sampling.max_tokens or min(served.default_max_tokens, served.engine.max_len - len(prompt))
        self.request = EngineRequest(prompt=prompt, max_tokens=max_tokens, temperature=sampling.temperature,
                                     top_p=sampling.top_p, top_k=sampling.top_k, seed=seed % 2**32,
                                     stop_tokens=frozenset(self.stop_tokens), on_token=self.on_token,
                                     on_finish=self.on_finish)

    def on_token(self, token: Token) -> bool:
        delta, stopped = self.text.push(token.id)
        if token.id not in self.stop_tokens:
            self.tokens.append(token)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (self.index, delta, token, None))
        return stopped

    def on_finish(self, reason: str) -> None:
        tail = self.text.flush() if reason in ("stop", "length") else ""
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (self.index, tail, None, reason))


async def _respond(http: Request, served: Served, metrics: Metrics, kind: str, prompts: list[list[int]],
                   parsed: CompletionRequest | ChatRequest, stop_strings) -> Response:
    engine, sampling = served.engine, parsed.sampling
    param = "prompt" if kind == "completions" else "messages"
    for ids in prompts:
        if not ids:
            raise ApiError(400, f"{param}: it has no tokens; give some text", param=param)
        if len(ids) >= engine.max_len:
            raise ApiError(400, f"{param}: {len(ids)} tokens, but the context holds {engine.max_len} (prompt + "
                           "completion); shorten it", param=param, code="context_length_exceeded")
        if sampling.max_tokens is not None and len(ids) + sampling.max_tokens > engine.max_len:
            raise ApiError(400, f"max_tokens: the prompt's {len(ids)} tokens + max_tokens {sampling.max_tokens} "
                           f"exceed the context of {engine.max_len} tokens; ask for at most "
                           f"{engine.max_len - len(ids)}", param="max_tokens", code="context_length_exceeded")
        bad = [t for t in ids if not 0 <= t < engine.vocab_size]
        if bad:
            raise ApiError(400, f"prompt: token ids outside the vocabulary of {engine.vocab_size}: {bad[:5]}",
                           param="prompt")
    loop, queue, arrived = asyncio.get_running_loop(), asyncio.Queue(), time.perf_counter()
    seed = sampling.seed if sampling.seed is not None else secrets.randbits(31)
    parts = [_Completion(i * sampling.n + j, ids, sampling, seed + j, served, stop_strings, loop, queue, arrived)
             for i, ids in enumerate(prompts) for j in range(sampling.n)]
    try:
        for part in parts:
            engine.submit(part.request)
    except (QueueFull, EngineStopped, ValueError) as err:
        for part in parts:
            engine.cancel(part.request)
        if isinstance(err, ValueError):   # the engine's own checks (engine.check), named by field
            raise ApiError(400, str(err), param=str(err).split(":")[0]) from None
        if isinstance(err, QueueFull):
            raise ApiError(429, f"the server is busy ({err}); retry shortly", code="rate_limit_exceeded",
                           kind="rate_limit_error", headers={"Retry-After": "1"}) from None
        raise ApiError(503, "the server is shutting down", kind="server_error") from None
    rid = f"{'cmpl' if kind == 'completions' else 'chatcmpl'}-{uuid.uuid4().hex[:24]}"
    if sampling.stream:
        return StreamingResponse(_stream(http, served, metrics, kind, rid, parts, queue, sampling),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    texts = [[] for _ in parts]
    reasons: dict[int, str] = {}
    try:
        async for index, delta, _, reason in _events(http, parts, queue):
            texts[index].append(delta)
            if reason:
                reasons[index] = reason
    finally:
        _cancel_unfinished(served, parts)
    _record(metrics, rid, parts)
    if "error" in reasons.values():
        raise ApiError(500, "generation failed", kind="server_error")
    choices = []
    for part in parts:
        text = "".join(texts[part.index])
        logprobs = _logprobs(kind, part, sampling.logprobs, served.tokenizer)
        finish = _finish_reason(reasons.get(part.index))
        if kind == "completions":
            choices.append({"index": part.index, "text": text, "logprobs": logprobs, "finish_reason": finish})
        else:
            choices.append({"index": part.index, "message": {"role": "assistant", "content": text},
                            "logprobs": logprobs, "finish_reason": finish})
    return JSONResponse({"id": rid, "object": "text_completion" if kind == "completions" else "chat.completion",
                         "created": int(time.time()), "model": served.name, "choices": choices,
                         "usage": _usage(parts, sampling.n)})


async def _events(http: Request, parts: list[_Completion], queue: asyncio.Queue):
    """The parts' (index, delta, token, finish reason) events until every part finished; ends early (the
    caller cancels what is left) when the client has gone."""
    open_parts = len(parts)
    while open_parts:
        try:
            event = await asyncio.wait_for(queue.get(), timeout=0.5)
        except asyncio.TimeoutError:
            if await http.is_disconnected():
                return
            continue
        if event[3] is not None:
            open_parts -= 1
        yield event


async def _stream(http: Request, served: Served, metrics: Metrics, kind: str, rid: str, parts: list[_Completion],
                  queue: asyncio.Queue, sampling: Sampling):
    created = int(time.time())
    obj = "text_completion" if kind == "completions" else "chat.completion.chunk"

    def chunk(choices, **extra) -> str:
        body = {"id": rid, "object": obj, "created": created, "model": served.name, "choices": choices, **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        if kind == "chat":
            yield chunk([{"index": p.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                          "finish_reason": None} for p in parts])
        failed, offsets = False, [0] * len(parts)
        async for index, delta, token, reason in _events(http, parts, queue):
            part = parts[index]
            logprobs = None
            if token is not None and sampling.logprobs is not None and token.id not in part.stop_tokens:
                logprobs = _token_logprobs(kind, [token], sampling.logprobs, served.tokenizer, offsets[index])
            offsets[index] += len(delta)
            if delta or logprobs or reason:
                finish = _finish_reason(reason)
                if kind == "completions":
                    choice = {"index": index, "text": delta, "logprobs": logprobs, "finish_reason": finish}
                else:
                    choice = {"index": index, "delta": {"content": delta} if delta else {}, "logprobs": logprobs,
                              "finish_reason": finish}
                failed |= reason == "error"
                yield chunk([choice], **({"usage": _usage([part])} if reason else {}))
        if failed:
            yield f"data: {json.dumps(ApiError(500, 'generation failed', kind='server_error').body())}\n\n"
        if sampling.include_usage:
            yield chunk([], usage=_usage(parts, sampling.n))
        yield "data: [DONE]\n\n"
    finally:
        _cancel_unfinished(served, parts)
        _record(metrics, rid, parts)


def _cancel_unfinished(served: Served, parts: list[_Completion]) -> None:
    for part in parts:
        if part.request.finish_reason is None:
            served.engine.cancel(part.request)


def _record(metrics: Metrics, rid: str, parts: list[_Completion]) -> None:
    """Metrics and the log line (ids, sizes and timings only: never the text)."""
    now = time.perf_counter()
    for part in parts:
        request = part.request
        metrics.prompt_tokens.inc(len(request.prompt))
        metrics.completion_tokens.inc(request.generated)
        metrics.finished.labels(request.finish_reason or "cancelled").inc()
        if request.first_token_at is not None:
            metrics.time_to_first_token.observe(request.first_token_at - part.arrived)
        metrics.latency.observe(now - part.arrived)
        ttft = "-" if request.first_token_at is None else f"{request.first_token_at - part.arrived:.3f}"
        log.info("%s/%d prompt_tokens=%d completion_tokens=%d ttft_s=%s total_s=%.3f finish=%s", rid, part.index,
                 len(request.prompt), request.generated, ttft, now - part.arrived, request.finish_reason or "cancelled")


def _finish_reason(reason: str | None) -> str | None:
    return {"stop": "stop", "length": "length", "cancelled": "stop", "error": "error"}.get(reason) if reason else None


def _usage(parts: list[_Completion], n: int = 1) -> dict:
    """Token counts; a prompt sampled n times counts once, as OpenAI counts it."""
    prompt = sum(len(p.request.prompt) for p in parts if p.index % n == 0)
    completion = sum(p.request.generated for p in parts)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _logprobs(kind: str, part: _Completion, top: int | None, tokenizer) -> dict | None:
    if top is None:
        return None
    return _token_logprobs(kind, part.tokens, top, tokenizer, 0)


def _token_logprobs(kind: str, tokens: list[Token], top: int, tokenizer, offset: int) -> dict:
    """OpenAI's logprobs object for `tokens`: completions' {tokens, token_logprobs, top_logprobs,
    text_offset} or chat's {content: [{token, logprob, bytes, top_logprobs}]}."""
    def text(token_id) -> str:
        return tokenizer.decode([int(token_id)], skip_special_tokens=False)

    if kind == "completions":
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        position = offset
        for token in tokens:
            piece = text(token.id)
            out["tokens"].append(piece)
            out["token_logprobs"].append(token.logprob)
            out["top_logprobs"].append({text(i): float(lp) for i, lp in zip(token.top_ids[:top], token.top_logprobs[:top])})
            out["text_offset"].append(position)
            position += len(piece)
        return out
    content = []
    for token in tokens:
        piece = text(token.id)
        content.append({"token": piece, "logprob": token.logprob, "bytes": list(piece.encode("utf-8")),
                        "top_logprobs": [{"token": text(i), "logprob": float(lp), "bytes": list(text(i).encode("utf-8"))}
                                         for i, lp in zip(token.top_ids[:top], token.top_logprobs[:top])]})
    return {"content": content}
