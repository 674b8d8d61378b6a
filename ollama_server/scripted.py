"""The scripted backend: models whose replies are templates over the conversation, paced like a model.

A model script (from ``--config`` or ``POST /_emulator/models``)::

    {"reply": "You said: {last_user}",      # or a list, used in turn order (turns-1) % len
     "thinking": "Let me think.",           # thinking models only (capability "thinking")
     "tool_calls": [{"name": "get_weather", "arguments": {"city": "{last_user}"}}],
     "json_reply": {"answer": "{last_user}"},   # used when the request sets "format"
     "capabilities": ["completion", "tools"],
     "ttft_ms": 0, "chunk_delay_ms": 0, "load_ms": 0, "num_parallel": null,
     "faults": [ ...fault specs applied to every request for this model... ],
     "family": "llama", "parameter_size": "3.2B", "quantization": "Q4_K_M", "size": 2019393189,
     "context_length": 4096, "tool_call_ids": false, "piece_chars": 7}

Placeholders: ``{last_user}``, ``{turns}`` (user messages), ``{n_messages}``, ``{system}``, ``{model}``,
``{last_tool}``, ``{last_assistant}``; other braces are left alone. Replies are cut into pieces the
way a BPE tokenizer would: words with their leading space, long words split, every non-ASCII
character (accents, CJK, each emoji code point) its own piece, never split inside a character.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import time

from . import faults, wire

DEFAULT_REPLY = 'You said: "{last_user}". This is turn {turns}.'
DEFAULT_MODELS = {
    "llama3.2": {"capabilities": ["completion", "tools"], "family": "llama", "parameter_size": "3.2B",
                 "quantization": "Q4_K_M", "size": 2019393189},
    "qwen3:0.6b": {"capabilities": ["completion", "tools", "thinking"], "family": "qwen3",
                   "parameter_size": "751.63M", "quantization": "Q4_K_M", "size": 522653767,
                   "thinking": "The user wrote {last_user}. I should answer briefly."},
    "smollm2:135m": {"capabilities": ["completion"], "family": "llama", "parameter_size": "134.52M",
                     "quantization": "Q4_1", "size": 98362432},
}
_FIELDS = {"reply", "thinking", "tool_calls", "json_reply", "capabilities", "ttft_ms", "chunk_delay_ms",
           "load_ms", "num_parallel", "faults", "family", "parameter_size", "quantization", "size",
           "context_length", "tool_call_ids", "piece_chars"}
_PLACEHOLDER = re.compile(r"\{(last_user|turns|n_messages|system|model|last_tool|last_assistant)\}")
_PIECE = re.compile(r"'(?:s|t|re|ve|m|ll|d)\b| ?[A-Za-z]+| ?[0-9]{1,3}| ?[^\x00-\x7f]|"
                    r" ?[^\sA-Za-z0-9\x80-\U0010ffff]+|\s+(?!\S)|\s+")


def pieces(text: str, max_chars: int = 7) -> list[str]:
    """Cut ``text`` into token-like pieces; ``"".join(pieces(t)) == t`` always."""
    out = []
    for m in _PIECE.finditer(text):
        word = m.group()
        while len(word) > max_chars and word.isascii():
            out.append(word[:max_chars])
            word = word[max_chars:]
        out.append(word)
    return out


def conversation(messages: list, model: str) -> dict:
    """The placeholder values for one request's messages."""
    def last(role):
        return next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == role), "")
    return {"last_user": last("user"), "turns": str(sum(m.get("role") == "user" for m in messages)),
            "n_messages": str(len(messages)), "system": last("system") if messages else "",
            "model": model, "last_tool": last("tool"), "last_assistant": last("assistant")}


def render(template, conv: dict):
    """Fill placeholders in a string, or in every string inside lists and objects."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: conv[m.group(1)], template)
    if isinstance(template, list):
        return [render(t, conv) for t in template]
    if isinstance(template, dict):
        return {k: render(v, conv) for k, v in template.items()}
    return template


def from_schema(schema, text: str):
    """A small value that satisfies a JSON schema (what a constrained model would produce)."""
    if not isinstance(schema, dict):
        return text
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        return {k: from_schema(v, text) for k, v in props.items()} if isinstance(props, dict) else {}
    if kind == "array":
        n = schema.get("minItems", 1)
        return [from_schema(schema.get("items"), text) for _ in range(n if isinstance(n, int) and 0 <= n <= 64 else 1)]
    return {"string": text, "integer": 0, "number": 0, "boolean": False, "null": None}.get(kind, text)


class ModelScript:
    """One scripted model: what it answers, how fast, and what it shows in tags/show/ps."""

    def __init__(self, name: str, spec: dict, default_reply: str = DEFAULT_REPLY):
        unknown = set(spec) - _FIELDS
        if unknown:
            raise ValueError("model %s: unknown field(s) %s" % (name, ", ".join(sorted(unknown))))
        self.display = name if ":" in name else name + ":latest"
        self.name = wire.canonical_name(name)
        self.spec = dict(spec)
        self.reply = spec.get("reply", default_reply)
        self.thinking = spec.get("thinking")
        self.tool_calls = spec.get("tool_calls") or []
        self.json_reply = spec.get("json_reply")
        caps = list(spec.get("capabilities", ["completion"]))
        if self.thinking and "thinking" not in caps:
            caps.append("thinking")
        self.capabilities = caps
        self.ttft_ms = float(spec.get("ttft_ms", 0))
        self.chunk_delay_ms = float(spec.get("chunk_delay_ms", 0))
        self.load_ms = float(spec.get("load_ms", 0))
        self.num_parallel = spec.get("num_parallel")
        self.faults = [faults.parse_spec(f) for f in spec.get("faults", [])]
        self.family = spec.get("family", "llama")
        self.parameter_size = spec.get("parameter_size", "1B")
        self.quantization = spec.get("quantization", "Q4_K_M")
        self.size = int(spec.get("size", 1_000_000_000))
        self.context_length = int(spec.get("context_length", 4096))
        self.tool_call_ids = bool(spec.get("tool_call_ids", False))
        self.piece_chars = int(spec.get("piece_chars", 7))
        self.digest = hashlib.sha256(self.name.encode()).hexdigest()
        self.modified_ns = time.time_ns()
        self._piece_cache: dict[str, list[bytes]] = {}

    def details(self) -> dict:
        """``api.ModelDetails`` for tags, show and ps."""
        return wire.model_details(self.family, self.parameter_size, self.quantization)

    def model_info(self) -> dict:
        """``model_info`` of /api/show (a Go map: sorted keys)."""
        return wire.sorted_map({"general.architecture": self.family, "general.basename": self.name.split(":")[0],
                                "general.file_type": 15, "general.parameter_count": self.size * 2,
                                "general.quantization_version": 2,
                                "%s.context_length" % self.family: self.context_length})

    def encoded_pieces(self, text: str) -> list[bytes]:
        """The JSON-encoded pieces of ``text``, cached: replies repeat, encoding them is the hot path."""
        enc = self._piece_cache.get(text)
        if enc is None:
            if len(self._piece_cache) > 256:
                self._piece_cache.clear()
            enc = self._piece_cache[text] = [wire.go_bytes(p) for p in pieces(text, self.piece_chars)]
        return enc


class Generation:
    """One scripted reply as ``(field, value, tokens)`` items, paced by its timing.

    ``field`` is ``thinking`` or ``content`` (value: a JSON-encoded string piece, 1 token) or
    ``tool_calls`` (value: the list of calls, tokens: their estimated token count). This is the
    backend seam: ``chat`` consumes any async iterable of such items plus ``prompt_eval_count``,
    ``done_reason`` and an optional ``eval_count`` override.
    """

    def __init__(self, items: list, ttft: float, delay: float, cancel: asyncio.Event, prompt_tokens: int,
                 done_reason: str):
        self.items, self.ttft, self.delay, self.cancel = items, ttft, delay, cancel
        self.prompt_eval_count, self.done_reason = prompt_tokens, done_reason
        self.eval_count = None            # counted by the caller from the pieces it sent

    def __aiter__(self):
        return self._run()

    async def _run(self):
        start = time.perf_counter()
        await pause(self.ttft, self.cancel)
        for i, item in enumerate(self.items):
            if i and self.delay:
                await pause(start + self.ttft + i * self.delay - time.perf_counter(), self.cancel)
            if self.cancel.is_set():
                return
            yield item


async def pause(seconds: float, cancel: asyncio.Event) -> None:
    """Sleep, but wake as soon as ``cancel`` is set when the wait is long enough to matter."""
    if seconds <= 0:
        return
    if seconds < 0.05:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(cancel.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def prompt_tokens(body: dict) -> int:
    """A token estimate of the prompt: pieces of every message + 4 per message for the template."""
    total = 2
    for m in body.get("messages") or []:
        total += 4 + len(pieces(str(m.get("content") or "")))
    if body.get("tools"):
        total += len(pieces(wire.go_json(body["tools"])))
    return total


class ScriptedBackend:
    """Models from a config; ``generate`` turns a request into a paced ``Generation``."""

    kind = "scripted"

    def __init__(self, config: dict | None = None):
        self.config = config or {}
        self.models: dict[str, ModelScript] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the models of the start-up config."""
        self.default_reply = self.config.get("default_reply", DEFAULT_REPLY)
        self.models = {}
        self.set_models(self.config.get("models", DEFAULT_MODELS), replace=True)

    def set_models(self, specs: dict, replace: bool = False) -> list[str]:
        """Add or replace scripts (all of them when ``replace``); returns the canonical names."""
        built = [ModelScript(name, spec or {}, self.default_reply) for name, spec in specs.items()]
        if replace:
            self.models = {}
        for script in built:
            self.models[script.name] = script
        return [s.name for s in built]

    def get(self, name: str) -> ModelScript | None:
        """The script for a model name as a client spells it, or ``None``."""
        return self.models.get(wire.canonical_name(name)) if name else None

    async def load(self, model: ModelScript, load_ms: float, cancel: asyncio.Event) -> None:
        """Pretend to load the model (``load_ms`` of wall time)."""
        await pause(load_ms / 1000, cancel)

    def generate(self, model: ModelScript, body: dict, think: bool, timing: dict,
                 cancel: asyncio.Event) -> Generation:
        """The reply to ``body``: thinking pieces, a tool-call item or content pieces."""
        conv = conversation(body.get("messages") or [], body.get("model", ""))
        opts = body.get("options") or {}
        items: list = []
        if think and self.thinking_text(model):
            items += [("thinking", p, 1) for p in model.encoded_pieces(render(model.thinking, conv))]
        calls = self._tool_calls(model, body, conv)
        if calls:
            items.append(("tool_calls", calls, len(pieces(wire.go_json(calls)))))
        else:
            items += [("content", p, 1) for p in model.encoded_pieces(self._content(model, body, conv, opts))]
        done_reason = "stop"
        limit = opts.get("num_predict")
        if isinstance(limit, (int, float)) and 0 < limit < len(items):
            items, done_reason = items[:int(limit)], "length"
        ttft = timing.get("ttft_ms", model.ttft_ms) / 1000
        delay = timing.get("chunk_delay_ms", model.chunk_delay_ms) / 1000
        return Generation(items, ttft, delay, cancel, prompt_tokens(body), done_reason)

    @staticmethod
    def thinking_text(model: ModelScript):
        """The thinking template of a thinking-capable model, else ``None``."""
        return model.thinking if "thinking" in model.capabilities else None

    def _content(self, model: ModelScript, body: dict, conv: dict, opts: dict) -> str:
        reply = model.reply
        if isinstance(reply, list):
            reply = reply[(int(conv["turns"]) - 1) % len(reply)] if reply else ""
        text = render(reply, conv)
        fmt = body.get("format")
        if fmt == "json" or isinstance(fmt, dict):
            if model.json_reply is not None:
                text = wire.go_json(render(model.json_reply, conv))
            elif isinstance(fmt, dict):
                text = wire.go_json(from_schema(fmt, text))
            else:
                text = wire.go_json({"response": text})
        stops = opts.get("stop") or []
        cut = min((text.find(s) for s in stops if isinstance(s, str) and s and s in text), default=-1)
        return text[:cut] if cut >= 0 else text

    def _tool_calls(self, model: ModelScript, body: dict, conv: dict) -> list:
        tools = body.get("tools") or []
        msgs = body.get("messages") or []
        if not tools or not model.tool_calls or (msgs and msgs[-1].get("role") == "tool"):
            return []
        offered = {f.get("name") for t in tools for f in [t.get("function")] if isinstance(f, dict)}
        calls = []
        for call in model.tool_calls:
            fn = call.get("function", call)
            if fn.get("name") not in offered:
                continue
            shaped = {"function": {"index": len(calls), "name": fn["name"],
                                   "arguments": wire.sorted_map(render(fn.get("arguments") or {}, conv))}}
            if model.tool_call_ids:
                shaped = {"id": "call_" + hashlib.sha1(repr((conv, len(calls))).encode()).hexdigest()[:8],
                          **shaped}
            calls.append(shaped)
        return calls
