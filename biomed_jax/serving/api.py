"""The OpenAI API's request bodies, checked field by field: a bad request becomes an ApiError (400 with
OpenAI's error JSON naming the field), never an exception from deep inside the engine.

Supported: /v1/completions (prompt as a string, a list of strings, a list of token ids or a list of
those; max_tokens, temperature, top_p, top_k (an extension, as vLLM's), stop, seed, logprobs (0-5),
stream, stream_options.include_usage, n (samples per prompt, seeds seed, seed + 1, ...), echo = false) and /v1/chat/completions (messages with
system / user / assistant roles, text content; max_tokens or max_completion_tokens, logprobs and
top_logprobs (0-20), and the same sampling fields).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from biomed_jax.inference.engine import TOP_LOGPROBS
from biomed_jax.serving.chat import ROLES

MAX_STOP_STRINGS = 4
MAX_COMPLETION_LOGPROBS = 5
MAX_N = 16   # completions per prompt (self-consistency samples)


class ApiError(Exception):
    """An error answered as OpenAI does: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = dict(headers or {})

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _bad(param: str, message: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, f"{param}: {message}", param=param, code=code)


@dataclasses.dataclass
class Sampling:
    """What both endpoints share. max_tokens None: the endpoint's default."""

    max_tokens: int | None
    n: int
    temperature: float
    top_p: float
    top_k: int
    stop: tuple[str, ...]
    seed: int | None
    stream: bool
    include_usage: bool
    logprobs: int | None        # alternatives per token (completions' logprobs, chat's top_logprobs); None = off


@dataclasses.dataclass
class CompletionRequest:
    model: str
    prompts: list[str | list[int]]
    sampling: Sampling


@dataclasses.dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    sampling: Sampling


def _get(body: Mapping[str, Any], name: str, types: tuple, default=None, what: str = ""):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in types:   # JSON true is not a number here
        raise _bad(name, f"expected {what}, got a boolean", "invalid_type")
    if not isinstance(value, types):
        raise _bad(name, f"expected {what}, got {type(value).__name__}", "invalid_type")
    return value


def _number(body, name, default, low, high, low_open=False):
    value = _get(body, name, (int, float), default, "a number")
    if not ((low < value) if low_open else (low <= value)) or value > high:
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise _bad(name, f"must be in {bound}, got {value}")
    return float(value)


def _common(body: Mapping[str, Any], max_tokens_field: str = "max_tokens") -> tuple[str, Sampling]:
    if not isinstance(body, Mapping):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    model = _get(body, "model", (str,), None, "a string")
    if model is None:
        raise _bad("model", "required (GET /v1/models lists the served model)", "missing_required_parameter")
    max_tokens = _get(body, max_tokens_field, (int,), None, "an integer")
    if max_tokens is not None and max_tokens < 1:
        raise _bad(max_tokens_field, f"must be >= 1, got {max_tokens}")
    top_k = _get(body, "top_k", (int,), 0, "an integer")
    if top_k < -1:
        raise _bad("top_k", f"must be >= 0 (0 or -1 = off), got {top_k}")
    stop = _get(body, "stop", (str, list), [], "a string or a list of strings")
    stop = [stop] if isinstance(stop, str) else stop
    if len(stop) > MAX_STOP_STRINGS or not all(isinstance(s, str) and s for s in stop):
        raise _bad("stop", f"up to {MAX_STOP_STRINGS} non-empty strings")
    n = _get(body, "n", (int,), 1, "an integer")
    if not 1 <= n <= MAX_N:
        raise _bad("n", f"must be in [1, {MAX_N}], got {n}")
    for name in ("frequency_penalty", "presence_penalty"):
        if _get(body, name, (int, float), 0, "a number") != 0:
            raise _bad(name, "not supported (only 0)", "unsupported_value")
    options = _get(body, "stream_options", (dict,), {}, "an object")
    sampling = Sampling(
        max_tokens=max_tokens,
        n=n,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True),
        top_k=max(top_k, 0),
        stop=tuple(stop),
        seed=_get(body, "seed", (int,), None, "an integer"),
        stream=_get(body, "stream", (bool,), False, "a boolean"),
        include_usage=bool(_get(options, "include_usage", (bool,), False, "a boolean")),
        logprobs=None)
    return model, sampling


def parse_completion(body: Mapping[str, Any]) -> CompletionRequest:
    model, sampling = _common(body)
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(
            isinstance(p, str) or (isinstance(p, list) and p and all(isinstance(t, int) for t in p)) for p in prompt):
        prompts = list(prompt)
    elif prompt is None:
        raise _bad("prompt", "required", "missing_required_parameter")
    else:
        raise _bad("prompt", "expected a string, a list of strings, a list of token ids or a list of those",
                   "invalid_type")
    if _get(body, "echo", (bool,), False, "a boolean"):
        raise _bad("echo", "not supported", "unsupported_value")
    logprobs = _get(body, "logprobs", (int,), None, "an integer")
    if logprobs is not None and not 0 <= logprobs <= MAX_COMPLETION_LOGPROBS:
        raise _bad("logprobs", f"must be in [0, {MAX_COMPLETION_LOGPROBS}], got {logprobs}")
    sampling.logprobs = logprobs
    if sampling.max_tokens is None:
        sampling.max_tokens = 16   # the OpenAI completions default
    return CompletionRequest(model, prompts, sampling)


def parse_chat(body: Mapping[str, Any]) -> ChatRequest:
    field = "max_completion_tokens" if isinstance(body, Mapping) and "max_completion_tokens" in body else "max_tokens"
    model, sampling = _common(body, field)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "expected a non-empty list of {role, content} objects",
                   "missing_required_parameter" if messages is None else "invalid_type")
    parsed = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise _bad(where, "expected an object with role and content", "invalid_type")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _bad(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        if isinstance(content, list):   # content parts: text only
            if not all(isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise _bad(f"{where}.content", "only text parts ({type: text, text}) are supported", "invalid_type")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise _bad(f"{where}.content", "expected a string", "invalid_type")
        parsed.append({"role": role, "content": content})
    if parsed[-1]["role"] == "assistant":
        raise _bad(f"messages[{len(parsed) - 1}].role", "the last message must be the user's (or system's)")
    wants = _get(body, "logprobs", (bool,), False, "a boolean")
    top = _get(body, "top_logprobs", (int,), None, "an integer")
    if top is not None and not 0 <= top <= TOP_LOGPROBS:
        raise _bad("top_logprobs", f"must be in [0, {TOP_LOGPROBS}], got {top}")
    if top is not None and not wants:
        raise _bad("top_logprobs", "needs logprobs: true")
    sampling.logprobs = (top or 0) if wants else None
    return ChatRequest(model, parsed, sampling)
