"""Ollama's JSON on the wire, byte for byte as the Go server writes it.

What Go's ``encoding/json`` does that Python's ``json`` does not, and what this module copies:

* keys come in struct-field order (we build dicts in that order), ``omitempty`` fields are left out
  when empty or zero, maps (``model_info``, tool arguments sent as maps) have sorted keys;
* output is compact, non-ASCII stays raw UTF-8, and ``<``, ``>``, ``&``, U+2028 and U+2029 are
  escaped as ``\\u003c`` ... (Go's HTML-safe default);
* ``time.Time`` is RFC 3339 with up to nine fractional digits, trailing zeros trimmed, ``Z`` for UTC
  or a ``+hh:mm`` offset; ``time.Duration`` is an integer count of nanoseconds.

Shapes follow ``api/types.go`` (ChatResponse, Message, ToolCall, Metrics, ListModelResponse,
ProcessModelResponse, ShowResponse, ProgressResponse). Request decoding lives here too, so error
texts for bad input match the Go server's (``missing request body``, ``invalid character ...``).
"""
from __future__ import annotations

import json
import re
import time

from . import vision

__all__ = [
    "go_json", "go_bytes", "decode_piece", "rfc3339", "message", "chat_response", "metrics", "error_body",
    "model_details", "canonical_name", "qualified_name", "sorted_map", "ChunkEncoder", "decode_body", "DecodeError",
    "parse_keep_alive", "check_options", "parse_json", "type_error", "json_kind",
]

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                             "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_json(obj) -> str:
    """Encode ``obj`` exactly as Go's ``json.Marshal`` would (compact, HTML-escaped, raw UTF-8)."""
    text = _ENCODER.encode(obj)
    if any(c in text for c in "<>&\u2028\u2029"):
        text = text.translate(_GO_ESCAPES)
    return text


def decode_piece(encoded: bytes) -> str:
    """The text of a JSON-encoded string piece (the inverse of ``go_bytes`` for strings)."""
    return json.loads(encoded)


def go_bytes(obj) -> bytes:
    """``go_json`` as UTF-8 bytes (lone surrogates from odd input become U+FFFD like in Go)."""
    return go_json(obj).encode("utf-8", "replace")


_stamp_cache: dict[tuple[int, bool], tuple[str, str]] = {}


def rfc3339(ns: int | None = None, local: bool = False) -> str:
    """Format a wall-clock time in nanoseconds like Go's ``time.Time.MarshalJSON`` (RFC3339Nano)."""
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    key = (sec, local)
    parts = _stamp_cache.get(key)
    if parts is None:
        if len(_stamp_cache) > 64:
            _stamp_cache.clear()
        tm = time.localtime(sec) if local else time.gmtime(sec)
        off = tm.tm_gmtoff if local else 0
        zone = "Z" if off == 0 else "%s%02d:%02d" % ("-" if off < 0 else "+", abs(off) // 3600, abs(off) // 60 % 60)
        parts = _stamp_cache[key] = (time.strftime("%Y-%m-%dT%H:%M:%S", tm), zone)
    if frac:
        return "%s.%s%s" % (parts[0], ("%09d" % frac).rstrip("0"), parts[1])
    return parts[0] + parts[1]


def message(role: str, content: str, thinking: str = "", images=None, tool_calls=None,
            tool_name: str = "", tool_call_id: str = "") -> dict:
    """An ``api.Message``: role and content always, the rest omitempty."""
    msg = {"role": role, "content": content}
    if thinking:
        msg["thinking"] = thinking
    if images:
        msg["images"] = images
    if tool_calls:
        msg["tool_calls"] = tool_calls
    if tool_name:
        msg["tool_name"] = tool_name
    if tool_call_id:
        msg["tool_call_id"] = tool_call_id
    return msg


_METRIC_KEYS = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_count", "eval_duration")


def metrics(**values: int) -> dict:
    """``api.Metrics`` in field order; zero values are omitted (every field is omitempty)."""
    return {k: int(values[k]) for k in _METRIC_KEYS if values.get(k)}


def chat_response(model: str, created_at: str, msg: dict, done: bool, done_reason: str = "",
                  extra: dict | None = None) -> dict:
    """An ``api.ChatResponse``: model, created_at, message, done, done_reason (omitempty), metrics."""
    obj = {"model": model, "created_at": created_at, "message": msg, "done": done}
    if done_reason:
        obj["done_reason"] = done_reason
    if extra:
        obj.update(extra)
    return obj


def error_body(text: str) -> bytes:
    """The ``gin.H{"error": text}`` body every Ollama error uses."""
    return go_bytes({"error": text})


def model_details(family: str, parameter_size: str, quantization: str, fmt: str = "gguf") -> dict:
    """An ``api.ModelDetails`` (no omitempty: every key is always present)."""
    return {"parent_model": "", "format": fmt, "family": family, "families": [family],
            "parameter_size": parameter_size, "quantization_level": quantization}


def canonical_name(name: str) -> str:
    """Ollama's name matching: case-insensitive, ``:latest`` when untagged, default host/namespace dropped."""
    n = name.strip().lower()
    for prefix in ("registry.ollama.ai/", "library/"):
        if n.startswith(prefix):
            n = n[len(prefix):]
    return n if ":" in n.rsplit("/", 1)[-1] else n + ":latest"


def qualified_name(name: str) -> str:
    """The fully qualified name Ollama puts in capability errors (``registry.ollama.ai/library/x:latest``)."""
    canon = canonical_name(name)
    return "registry.ollama.ai/" + (canon if "/" in canon else "library/" + canon)


def sorted_map(value):
    """Go encodes ``map[string]any`` with sorted keys, recursively; structs keep field order."""
    if isinstance(value, dict):
        return {k: sorted_map(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_map(v) for v in value]
    return value


class ChunkEncoder:
    """Pre-encoded pieces of the non-final streaming line for one response: the hot path.

    ``line(field, encoded)`` costs one timestamp and one bytes join per chunk instead of building and
    encoding a dict; the bytes equal ``go_bytes(chat_response(...)) + b"\\n"`` for that message.
    """

    __slots__ = ("_head", "_local")
    _FIELD = {"content": b'"content":', "thinking": b'"content":"","thinking":',
              "tool_calls": b'"content":"","tool_calls":'}

    def __init__(self, model: str, local_time: bool = False):
        self._head = b'{"model":' + go_bytes(model) + b',"created_at":"'
        self._local = local_time

    def line(self, field: str, encoded: bytes) -> bytes:
        """A ``done:false`` line whose message ``field`` holds the already JSON-encoded value."""
        return b"".join((self._head, rfc3339(None, self._local).encode(), b'","message":{"role":"assistant",',
                         self._FIELD[field], encoded, b'},"done":false}\n'))


# ------------------------------------------------------------------------------------ request side
class DecodeError(Exception):
    """A request body the Go server would reject with 400 and this text."""


# (field, Go type name, accepted Python types) of api.ChatRequest / ShowRequest / PullRequest.
_FIELD_TYPES = {
    "model": ("string", (str,)), "name": ("string", (str,)), "messages": ("[]api.Message", (list,)),
    "stream": ("bool", (bool,)), "options": ("map[string]interface {}", (dict,)),
    "tools": ("api.Tools", (list,)), "insecure": ("bool", (bool,)), "verbose": ("bool", (bool,)),
}
_STRUCT = {"/api/chat": "ChatRequest", "/api/show": "ShowRequest", "/api/pull": "PullRequest"}


def json_kind(value) -> str:
    """The JSON kind Go names in type errors: bool, number, string, array, object, null."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _open_container(text: str, pos: int) -> str:
    """The innermost JSON container ('{' or '[') open at ``pos``, ignoring brackets inside strings."""
    stack, in_str, esc = [], False, False
    for ch in text[:pos]:
        if in_str:
            esc, in_str = (not esc and ch == "\\"), in_str and (esc or ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _go_syntax_error(body: str, err: json.JSONDecodeError) -> str:
    rest = body[err.pos:]
    if not rest.strip() or err.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    ch = rest[0]
    shown = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "'": "\\'"}.get(ch, ch)
    if err.msg == "Expecting ',' delimiter":
        where = "after object key:value pair" if _open_container(body, err.pos) == "{" else "after array element"
    else:
        where = {"Expecting property name enclosed in double quotes": "looking for beginning of object key string",
                 "Expecting ':' delimiter": "after object key",
                 "Extra data": "after top-level value",
                 "Invalid control character at": "in string literal"}.get(err.msg, "looking for beginning of value")
    return "invalid character '%s' %s" % (shown, where)


def parse_json(raw: bytes, empty: str = "missing request body"):
    """A JSON body, or ``DecodeError`` with Go's text (``empty`` for a blank body: Go's ``EOF``)."""
    text = raw.decode("utf-8", "replace")
    if not text.strip():
        raise DecodeError(empty)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DecodeError(_go_syntax_error(text, err)) from None


def type_error(value, where: str, go_type: str) -> "DecodeError":
    """Go's ``UnmarshalTypeError`` text (Go >= 1.24: top-level struct, full field path)."""
    return DecodeError("json: cannot unmarshal %s into Go struct field %s of type %s" % (json_kind(value), where, go_type))


def decode_body(raw: bytes, path: str) -> dict:
    """Decode a request body like gin's ``ShouldBindJSON`` into a ``DecodeError`` with Go's text."""
    body = parse_json(raw)
    struct = _STRUCT.get(path, "Request")
    if not isinstance(body, dict):
        raise DecodeError("json: cannot unmarshal %s into Go value of type api.%s" % (json_kind(body), struct))
    for key, value in body.items():
        spec = _FIELD_TYPES.get(key)
        if spec and value is not None and not isinstance(value, spec[1]):
            raise DecodeError("json: cannot unmarshal %s into Go struct field %s.%s of type %s"
                              % (json_kind(value), struct, key, spec[0]))
    _check_items(body, struct)
    think = body.get("think")
    if think is not None and not isinstance(think, bool) and think not in ("high", "medium", "low"):
        raise DecodeError('invalid think value: %s (must be "high", "medium", "low", true, or false)'
                          % go_json(think))
    return body


_MESSAGE_FIELDS = {"role": "string", "content": "string", "thinking": "string", "tool_name": "string",
                   "tool_call_id": "string", "images": "[]api.ImageData", "tool_calls": "[]api.ToolCall"}


def _check_items(body: dict, struct: str) -> None:
    """Go's type errors inside ``messages`` and ``tools`` (elements must be objects of the right shape)."""
    for field, item_type in (("messages", "api.Message"), ("tools", "api.Tool")):
        for item in body.get(field) or []:
            if not isinstance(item, dict):
                raise DecodeError("json: cannot unmarshal %s into Go struct field %s.%s of type %s"
                                  % (json_kind(item), struct, field, item_type))
            if field != "messages":
                continue
            for key, go_type in _MESSAGE_FIELDS.items():
                value = item.get(key)
                if value is not None and not isinstance(value, list if go_type.startswith("[]") else str):
                    raise DecodeError("json: cannot unmarshal %s into Go struct field %s.messages.%s of type %s"
                                      % (json_kind(value), struct, key, go_type))
            for image in item.get("images") or []:
                if image is not None and not isinstance(image, str):
                    raise type_error(image, struct + ".messages.images", "api.ImageData")
                bad = image and vision.go_base64_error(image)
                if bad:
                    raise DecodeError(bad)


_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}
FOREVER_NS = 2**63 - 1


def parse_keep_alive(value) -> int | None:
    """``api.Duration`` semantics in ns: number = seconds, string = Go duration, negative = forever.

    ``None`` means "server default". Raises ``DecodeError`` with Go's text for a bad string.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DecodeError("json: cannot unmarshal %s into Go struct field ChatRequest.keep_alive of type "
                          "api.Duration" % json_kind(value))
    if not isinstance(value, str):
        return FOREVER_NS if value < 0 else int(value * 1_000_000_000)
    text, sign = value, 1
    if text[:1] in "+-":
        sign, text = (-1 if text[0] == "-" else 1), text[1:]
    if text == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_RE.match(text, pos)
        if not m:
            unit_less = re.fullmatch(r"[0-9.]+", text[pos:])
            why = "missing unit in duration" if unit_less else "invalid duration"
            raise DecodeError('time: %s "%s"' % (why, value))
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if not text:
        raise DecodeError('time: invalid duration "%s"' % value)
    return FOREVER_NS if sign < 0 else int(total)


# api.Options field kinds (runtime + runner options); FromMap only type-checks the known ones.
_OPTION_KINDS = dict.fromkeys(
    ("num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "mirostat", "num_ctx", "num_batch",
     "num_gpu", "main_gpu", "num_thread"), "integer")
_OPTION_KINDS.update(dict.fromkeys(
    ("top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty",
     "frequency_penalty", "mirostat_tau", "mirostat_eta"), "float32"))
_OPTION_KINDS.update(dict.fromkeys(("numa", "low_vram", "vocab_only", "use_mmap", "use_mlock",
                                    "penalize_newline", "truncate", "shift"), "boolean"))
_OPTION_KINDS["stop"] = "array"


def check_options(options: dict | None) -> str | None:
    """The error ``api.Options.FromMap`` returns for a wrongly typed option, else ``None``."""
    for key, val in (options or {}).items():
        kind = _OPTION_KINDS.get(key)
        if kind is None or val is None:
            continue
        number = isinstance(val, (int, float)) and not isinstance(val, bool)
        if kind in ("integer", "float32") and not number or kind == "boolean" and not isinstance(val, bool):
            return 'option "%s" must be of type %s' % (key, kind)
        if kind == "array":
            if not isinstance(val, list):
                return 'option "%s" must be of type array' % key
            if not all(isinstance(s, str) for s in val):
                return 'option "%s" must be of an array of strings' % key
    return None
