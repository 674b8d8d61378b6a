"""The OpenAI-compatible front, as Ollama serves it: ``/v1/chat/completions``, ``/v1/models``.

Ollama turns a ``/v1/chat/completions`` request into an ``api.ChatRequest`` (``openai/openai.go``
``FromChatRequest``, run by ``middleware/openai.go`` ``ChatMiddleware``) and runs its own
ChatHandler; the reply is re-shaped by ``ChatWriter`` (``fronts.OpenAIFront``). So here: bind the
OpenAI body with Go's errors (400 ``invalid_request_error``: ``EOF``, ``invalid character ...``,
``json: cannot unmarshal ...``), refuse an empty ``messages`` (``[] is too short - 'messages'``),
convert (text/image parts become separate messages, ``image_url`` must be a ``data:image/{jpeg,jpg,
png,webp};base64,`` or ``data:;base64,`` URL, tool-call arguments are JSON strings, a tool message's
``tool_call_id`` names its tool, ``max_tokens`` → ``num_predict``, ``stop``, ``seed``, penalties,
``temperature``/``top_p`` default 1.0, ``response_format`` → ``format``, ``reasoning_effort`` →
``think``), then serve it like ``/api/chat`` (``chat.serve``): same models, faults, queue and log.
``stream`` defaults to false here.

``GET /v1/models`` → ``{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}``
(``data`` is ``null`` when nothing is installed: a nil Go slice); ``GET /v1/models/{name}`` → one
model, or 404 ``model 'x' not found`` in the OpenAI error shape.
"""
from __future__ import annotations

import base64
import binascii

from . import chat, http, wire
from .fronts import OpenAIFront, error_object

STRUCT = "ChatCompletionRequest"
_TYPES = {"model": ("string", str), "messages": ("[]openai.Message", list), "stream": ("bool", bool),
          "stream_options": ("openai.StreamOptions", dict), "max_tokens": ("int", int), "seed": ("int", int),
          "temperature": ("float64", float), "frequency_penalty": ("float64", float),
          "presence_penalty": ("float64", float), "top_p": ("float64", float),
          "response_format": ("openai.ResponseFormat", dict), "tools": ("[]api.Tool", list),
          "reasoning": ("openai.Reasoning", dict), "reasoning_effort": ("string", str)}
_MESSAGE = {"role": str, "reasoning": str, "name": str, "tool_call_id": str, "tool_calls": list}
_IMAGE_PREFIXES = ("data:;base64,",) + tuple("data:image/%s;base64," % t for t in ("jpeg", "jpg", "png", "webp"))


class BadRequest(Exception):
    """A 400 the middleware answers itself (``openai.NewError(400, text)``)."""


def _check(value, go_type: str, where: str, want) -> None:
    if value is None:
        return
    if want is int:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and value != int(value):
            raise BadRequest("json: cannot unmarshal number %s into Go struct field %s of type int" % (value, where))
    elif want is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, want)
    if not ok:
        raise BadRequest(str(wire.type_error(value, where, go_type)))


def bind(raw: bytes) -> dict:
    """gin's ``ShouldBindJSON`` into ``openai.ChatCompletionRequest``, with Go's error texts."""
    try:
        body = wire.parse_json(raw, empty="EOF")
    except wire.DecodeError as err:
        raise BadRequest(str(err)) from None
    if not isinstance(body, dict):
        raise BadRequest("json: cannot unmarshal %s into Go value of type openai.%s" % (wire.json_kind(body), STRUCT))
    for key, (go_type, want) in _TYPES.items():
        _check(body.get(key), go_type, "%s.%s" % (STRUCT, key), want)
    _check((body.get("stream_options") or {}).get("include_usage"), "bool", STRUCT + ".stream_options.include_usage", bool)
    for msg in body.get("messages") or []:
        _check(msg, "openai.Message", STRUCT + ".messages", dict)
        for key, want in _MESSAGE.items():
            _check(msg.get(key), "[]openai.ToolCall" if want is list else "string", "%s.messages.%s" % (STRUCT, key), want)
        for call in msg.get("tool_calls") or []:
            _check(call, "openai.ToolCall", STRUCT + ".messages.tool_calls", dict)
            fn = call.get("function") or {}
            _check(fn.get("arguments"), "string", STRUCT + ".messages.tool_calls.function.arguments", str)
    for tool in body.get("tools") or []:
        _check(tool, "api.Tool", STRUCT + ".tools", dict)
    return body


def _calls(calls: list) -> list:
    """``FromCompletionToolCall``: JSON-string arguments back to objects."""
    out = []
    for call in calls:
        fn = call.get("function") or {}
        try:
            args = wire.parse_json((fn.get("arguments") or "").encode(), empty="EOF")
        except wire.DecodeError:
            raise BadRequest("invalid tool call arguments") from None
        if not isinstance(args, dict):
            raise BadRequest("invalid tool call arguments")
        out.append({"function": {"name": fn.get("name", ""), "arguments": args}})
    return out


def _tool_name(messages: list, call_id: str) -> str:
    for msg in reversed(messages):
        for call in msg.get("tool_calls") or []:
            if call.get("id") == call_id:
                return (call.get("function") or {}).get("name", "")
    return ""


def _image(part: dict) -> str:
    url = part.get("image_url")
    url = url.get("url") if isinstance(url, dict) else url
    if not isinstance(url, str):
        raise BadRequest("invalid message format")
    prefix = next((p for p in _IMAGE_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        raise BadRequest("invalid image input")
    try:
        data = base64.b64decode(url[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("invalid message format") from None
    return base64.b64encode(data).decode()


def to_chat_request(body: dict) -> dict:
    """``FromChatRequest``: the ``api.ChatRequest`` Ollama's ChatHandler gets."""
    source = body.get("messages") or []
    messages = []
    for msg in source:
        role, content = msg.get("role", ""), msg.get("content")
        tool_name = ""
        if role.lower() == "tool":
            tool_name = msg.get("name") or (_tool_name(source, msg["tool_call_id"]) if msg.get("tool_call_id") else "")
        if isinstance(content, str):
            messages.append(wire.message(role, content, msg.get("reasoning", ""),
                                         tool_calls=_calls(msg.get("tool_calls") or []), tool_name=tool_name))
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    raise BadRequest("invalid message format")
                if part.get("type") == "text":
                    if not isinstance(part.get("text"), str):
                        raise BadRequest("invalid message format")
                    messages.append(wire.message(role, part["text"]))
                elif part.get("type") == "image_url":
                    messages.append(wire.message(role, "", images=[_image(part)]))
                else:
                    raise BadRequest("invalid message format")
            if messages and msg.get("tool_calls"):
                messages[-1].update(tool_calls=_calls(msg["tool_calls"]))
        elif msg.get("tool_calls") is None:
            raise BadRequest("invalid message content type: %s" % _go_type(content))
        else:
            messages.append(wire.message(role, "", msg.get("reasoning", ""), tool_calls=_calls(msg["tool_calls"])))
    options = {}
    stop = body.get("stop")
    if isinstance(stop, str):
        options["stop"] = [stop]
    elif isinstance(stop, list):
        options["stop"] = [s for s in stop if isinstance(s, str)]
    if body.get("max_tokens") is not None:
        options["num_predict"] = int(body["max_tokens"])
    options["temperature"] = body["temperature"] if body.get("temperature") is not None else 1.0
    for key in ("seed", "frequency_penalty", "presence_penalty"):
        if body.get(key) is not None:
            options[key] = body[key]
    options["top_p"] = body["top_p"] if body.get("top_p") is not None else 1.0
    out = {"model": body.get("model") or "", "messages": messages}
    fmt = body.get("response_format") or {}
    kind = str(fmt.get("type") or "").strip().lower()
    if kind == "json_object":
        out["format"] = "json"
    elif kind == "json_schema" and isinstance(fmt.get("json_schema"), dict) and "schema" in fmt["json_schema"]:
        out["format"] = fmt["json_schema"]["schema"]
    out.update(options=options, stream=bool(body.get("stream")))
    if body.get("tools"):
        out["tools"] = body["tools"]
    effort = (body.get("reasoning") or {}).get("effort") or body.get("reasoning_effort")
    if effort:
        if effort not in ("high", "medium", "low", "none"):
            raise BadRequest("invalid reasoning value: '%s' (must be \"high\", \"medium\", \"low\", or \"none\")" % effort)
        out["think"] = False if effort == "none" else effort
    return out


def _go_type(value) -> str:
    return {type(None): "<nil>", bool: "bool", int: "float64", float: "float64", dict: "map[string]interface {}"}.get(
        type(value), "string")


async def _error(conn, entry, status: int, text: str) -> None:
    await http.send(conn, status, wire.go_bytes(error_object(status, text)) + b"\n", "application/json")
    entry["status"], entry["outcome"] = status, {"result": "error", "error": text}


async def chat_completions(app, req: http.Request, conn: http.Connection, entry: dict) -> None:
    """``POST /v1/chat/completions``."""
    try:
        body = bind(req.body)
        if not body.get("messages"):
            raise BadRequest("[] is too short - 'messages'")
        converted = to_chat_request(body)
    except BadRequest as err:
        return await _error(conn, entry, 400, str(err))
    entry["ollama_body"] = converted
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    await chat.serve(app, converted, req, conn, entry, OpenAIFront(converted["model"], include_usage))


def _model_object(m, ident: str) -> dict:
    canon = wire.canonical_name(ident)
    owner = canon.rsplit("/", 1)[0].split("/")[-1] if "/" in canon else "library"
    return {"id": ident, "object": "model", "created": m.modified_ns // 1_000_000_000, "owned_by": owner}


async def models(app, req: http.Request, conn: http.Connection, entry: dict) -> None:
    """``GET /v1/models`` and ``GET /v1/models/{name}``."""
    name = req.path[len("/v1/models"):].strip("/")
    if not name:
        data = [_model_object(m, m.display) for m in app.backend.models.values()] or None
        payload = {"object": "list", "data": data}
    else:
        m = app.backend.get(name)
        if m is None:
            return await _error(conn, entry, 404, "model '%s' not found" % name)
        payload = _model_object(m, name)
    await http.send(conn, 200, wire.go_bytes(payload) + b"\n", "application/json")
    entry["status"] = 200
