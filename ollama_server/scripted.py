"""The scripted backend: models whose replies are templates over the conversation, paced like a model.

A model script (from ``--config`` or ``POST /_emulator/models``; every field is optional)::

    {"reply": "You said: {last_user}",      # or a list, used in turn order (turns-1) % len
     "thinking": "Let me think.",           # in message.thinking (adds capability "thinking")
     "think_tag": "think", "think_gap": "\\n\\n", "think_close": true,   # ... or in content, <think>...</think>
     "split_at": [3, "nk>"], "pieces": null,    # extra piece cuts (offset / before a text); explicit pieces
     "tool_calls": [{"name": "get_weather", "arguments": {"city": "{last_user}"}}],   # or "auto"
     "tool_rounds": [[...], "auto"], "tool_reply": "It is {tool_results}.", "tool_call_ids": false,
     "vision_reply": "I see an image of {images}.", "images_without_vision": "ignore",   # or "error"
     "json_reply": {"answer": "{last_user}"},   # used when the request sets "format"
     "capabilities": ["completion", "tools"],
     "ttft_ms": 0, "chunk_delay_ms": 0, "load_ms": 0, "num_parallel": null, "pull_ms": 0, "pull_steps": 4,
     "faults": [ ...fault specs applied to every request for this model... ],
     "family": "llama", "parameter_size": "3.2B", "quantization": "Q4_K_M", "size": 2019393189,
     "context_length": 4096, "piece_chars": 7}

Placeholders: ``{last_user}``, ``{turns}`` (user messages), ``{n_messages}``, ``{system}``, ``{model}``,
``{last_tool}``, ``{last_assistant}``, ``{tool_results}``, ``{images}``, ``{n_images}``, ``{server}``;
other braces are left alone. Replies are cut into pieces the way a BPE tokenizer would: words with
their leading space, long words split, every non-ASCII character its own piece, never split inside a
character. Tools: see ``tools.py``; images: ``vision.py``.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import time

from . import faults, tools, vision, wire

DEFAULT_REPLY = 'You said: "{last_user}". This is turn {turns}.'
DEFAULT_VISION_REPLY = "I see an image of {images}."
NO_VISION = "Failed to create new sequence: failed to process inputs: this model is missing data required for image input"
BAD_IMAGE = "Failed to create new sequence: failed to process inputs: image: unknown format"
DEFAULT_MODELS = {
    "llama3.2": {"capabilities": ["completion", "tools"], "family": "llama", "parameter_size": "3.2B",
                 "quantization": "Q4_K_M", "size": 2019393189},
    "qwen3:0.6b": {"capabilities": ["completion", "tools", "thinking"], "family": "qwen3",
                   "parameter_size": "751.63M", "quantization": "Q4_K_M", "size": 522653767,
                   "thinking": "The user wrote {last_user}. I should answer briefly."},
    "smollm2:135m": {"capabilities": ["completion"], "family": "llama", "parameter_size": "134.52M",
                     "quantization": "Q4_1", "size": 98362432},
}
FIELDS = {"reply", "thinking", "tool_calls", "tool_rounds", "tool_reply", "json_reply", "capabilities",
          "ttft_ms", "chunk_delay_ms", "load_ms", "num_parallel", "faults", "family", "parameter_size",
          "quantization", "size", "context_length", "tool_call_ids", "piece_chars", "think_tag", "think_gap",
          "think_close", "split_at", "pieces", "vision_reply", "images_without_vision", "pull_ms", "pull_steps",
          "log_send_times"}
_PLACEHOLDER = re.compile(r"\{(last_user|turns|n_messages|system|model|last_tool|last_assistant|tool_results|"
                          r"images|n_images|server)\}")
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


def cut(parts: list[str], text: str, split_at) -> list[str]:
    """``parts`` (which join to ``text``) cut again at every offset, or before every occurrence of a string."""
    offsets = set()
    for where in split_at or ():
        if isinstance(where, int) and not isinstance(where, bool):
            offsets.add(where if where >= 0 else len(text) + where)
        elif isinstance(where, str) and where:
            offsets.update(m.start() for m in re.finditer(re.escape(where), text))
    out, pos = [], 0
    for part in parts:
        inner = sorted(o - pos for o in offsets if pos < o < pos + len(part))
        for a, b in zip([0] + inner, inner + [len(part)]):
            out.append(part[a:b])
        pos += len(part)
    return out


def conversation(messages: list, model: str, server: str = "") -> dict:
    """The placeholder values for one request's messages."""
    def last(role):
        return next((str(m.get("content") or "") for m in reversed(messages)
                     if m.get("role") == role and (m.get("content") or role != "user")), "")
    return {"last_user": last("user"), "turns": str(sum(m.get("role") == "user" for m in messages)),
            "n_messages": str(len(messages)), "system": last("system") if messages else "",
            "model": model, "last_tool": last("tool"), "last_assistant": last("assistant"),
            "tool_results": tools.tool_results(messages), "images": "", "n_images": "0", "server": server}


def render(template, conv: dict):
    """Fill placeholders in a string, or in every string inside lists and objects."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: conv[m.group(1)], template)
    if isinstance(template, list):
        return [render(t, conv) for t in template]
    if isinstance(template, dict):
        return {k: render(v, conv) for k, v in template.items()}
    return template


def last_turn_images(messages: list) -> list[str]:
    """The images of the trailing user messages (the OpenAI path splits a turn into several)."""
    out = []
    for msg in reversed(messages):
        if msg.get("role") != "user":
            break
        out[:0] = [i for i in msg.get("images") or [] if isinstance(i, str)]
    return out


class ModelScript:
    """One scripted model: what it answers, how fast, and what it shows in tags/show/ps."""

    def __init__(self, name: str, spec: dict, default_reply: str = DEFAULT_REPLY):
        unknown = set(spec) - FIELDS
        if unknown:
            raise ValueError("model %s: unknown field(s) %s" % (name, ", ".join(sorted(unknown))))
        self.display = name if ":" in name else name + ":latest"
        self.name = wire.canonical_name(name)
        self.spec, self.default_reply = dict(spec), default_reply
        self.reply = spec.get("reply", default_reply)
        self.thinking = spec.get("thinking")
        self.rounds = tools.parse_rounds(spec, name)
        self.tool_reply = spec.get("tool_reply", self.reply if "reply" in spec else tools.DEFAULT_TOOL_REPLY)
        self.json_reply = spec.get("json_reply")
        tag = spec.get("think_tag")
        if tag not in (None, False, True, "think", "thinking"):
            raise ValueError('model %s: think_tag must be "think" or "thinking"' % name)
        self.think_tag = "think" if tag is True else tag or None
        self.think_gap = str(spec.get("think_gap", "\n\n"))
        self.think_close = bool(spec.get("think_close", True))
        self.split_at = list(spec.get("split_at") or [])
        self.explicit_pieces = spec.get("pieces")
        self.vision_reply = spec.get("vision_reply", DEFAULT_VISION_REPLY)
        self.images_without_vision = spec.get("images_without_vision", "ignore")
        if self.images_without_vision not in ("ignore", "error"):
            raise ValueError('model %s: images_without_vision must be "ignore" or "error"' % name)
        caps = list(spec.get("capabilities", ["completion"]))
        if self.thinking and not self.think_tag and "thinking" not in caps:
            caps.append("thinking")
        self.capabilities = caps
        self.ttft_ms = float(spec.get("ttft_ms", 0))
        self.chunk_delay_ms = float(spec.get("chunk_delay_ms", 0))
        self.load_ms = float(spec.get("load_ms", 0))
        self.pull_ms, self.pull_steps = float(spec.get("pull_ms", 0)), max(1, int(spec.get("pull_steps", 4)))
        self.num_parallel = spec.get("num_parallel")
        self.faults = [faults.parse_spec(f) for f in spec.get("faults", [])]
        self.family = spec.get("family", "llama")
        self.parameter_size = spec.get("parameter_size", "1B")
        self.quantization = spec.get("quantization", "Q4_K_M")
        self.size = int(spec.get("size", 1_000_000_000))
        self.context_length = int(spec.get("context_length", 4096))
        self.tool_call_ids = bool(spec.get("tool_call_ids", False))
        self.piece_chars = int(spec.get("piece_chars", 7))
        self.log_send_times = bool(spec.get("log_send_times", False))
        self.digest = hashlib.sha256(self.name.encode()).hexdigest()
        self.modified_ns = time.time_ns()
        self._piece_cache: dict[tuple, list[bytes]] = {}

    def with_overrides(self, fields: dict) -> "ModelScript":
        """This model with some script fields replaced (a ``script`` fault: one request only)."""
        other = ModelScript(self.display, {**self.spec, **fields}, self.default_reply)
        other.modified_ns, other.name, other.base = self.modified_ns, self.name, self
        return other

    def details(self) -> dict:
        """``api.ModelDetails`` for tags, show and ps."""
        return wire.model_details(self.family, self.parameter_size, self.quantization)

    def model_info(self) -> dict:
        """``model_info`` of /api/show (a Go map: sorted keys)."""
        return wire.sorted_map({"general.architecture": self.family, "general.basename": self.name.split(":")[0],
                                "general.file_type": 15, "general.parameter_count": self.size * 2,
                                "general.quantization_version": 2,
                                "%s.context_length" % self.family: self.context_length})

    def encoded_pieces(self, text: str, split_at=()) -> list[bytes]:
        """The JSON-encoded pieces of ``text``, cached: replies repeat, encoding them is the hot path."""
        key = (text, tuple(split_at))
        enc = self._piece_cache.get(key)
        if enc is None:
            if len(self._piece_cache) > 256:
                self._piece_cache.clear()
            parts = pieces(text, self.piece_chars)
            if split_at:
                parts = cut(parts, text, split_at)
            enc = self._piece_cache[key] = [wire.go_bytes(p) for p in parts]
        return enc


class Generation:
    """One scripted reply as ``(field, value, tokens)`` items, paced by its timing.

    ``field`` is ``thinking`` or ``content`` (value: a JSON-encoded string piece, 1 token) or
    ``tool_calls`` (value: the list of calls, tokens: their estimated token count). This is the
    backend seam: ``chat`` consumes any async iterable of such items plus ``prompt_eval_count``,
    ``done_reason`` and an optional ``eval_count`` override. ``planned``/``produced`` count the items
    (so a test can see that a closed connection stopped generation), ``images`` what was seen.
    """

    def __init__(self, items: list, ttft: float, delay: float, cancel: asyncio.Event, prompt_tokens: int,
                 done_reason: str, error: str | None = None, images: list | None = None):
        self.items, self.ttft, self.delay, self.cancel = items, ttft, delay, cancel
        self.prompt_eval_count, self.done_reason = prompt_tokens, done_reason
        self.eval_count = None            # counted by the caller from the pieces it sent
        self.error, self.images = error, images or []
        self.planned, self.produced = len(items), 0

    def __aiter__(self):
        return self._run()

    async def _run(self):
        start = time.perf_counter()
        await pause(self.ttft, self.cancel)
        if self.error:
            raise RuntimeError(self.error)
        for i, item in enumerate(self.items):
            if i and self.delay:
                await pause(start + self.ttft + i * self.delay - time.perf_counter(), self.cancel)
            if self.cancel.is_set():
                return
            self.produced += 1
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
    """Models from a config; ``generate`` turns a request into a paced ``Generation``.

    Config keys: ``models`` (installed), ``registry`` (pullable, installed by a successful
    ``/api/pull``), ``default_reply``, ``server_id`` (the ``{server}`` placeholder).
    """

    kind = "scripted"

    def __init__(self, config: dict | None = None, only: list[str] | None = None):
        self.config = config or {}
        self.only = only
        self.server_id = str(self.config.get("server_id") or "")
        self.models: dict[str, ModelScript] = {}
        self.registry: dict[str, ModelScript] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the models of the start-up config."""
        self.default_reply = self.config.get("default_reply", DEFAULT_REPLY)
        specs = dict(self.config.get("models", DEFAULT_MODELS))
        if self.only is not None:
            by_canon = {wire.canonical_name(k): v for k, v in specs.items()}
            specs = {n: by_canon.get(wire.canonical_name(n), {}) for n in self.only}
        self.set_models(specs, replace=True)
        self.registry = {s.name: s for s in (ModelScript(n, v or {}, self.default_reply)
                                             for n, v in self.config.get("registry", {}).items())}

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

    def pullable(self, name: str) -> ModelScript | None:
        """An installed or registry model for ``/api/pull``."""
        return self.get(name) or (self.registry.get(wire.canonical_name(name)) if name else None)

    def install(self, model: ModelScript) -> None:
        """A pull finished: the model is installed (``/api/tags`` lists it)."""
        model.modified_ns = time.time_ns()
        self.models[model.name] = model

    async def load(self, model: ModelScript, load_ms: float, cancel: asyncio.Event) -> None:
        """Pretend to load the model (``load_ms`` of wall time)."""
        await pause(load_ms / 1000, cancel)

    def generate(self, model: ModelScript, body: dict, think: bool, timing: dict,
                 cancel: asyncio.Event) -> Generation:
        """The reply to ``body``: thinking pieces, a tool-call item or content pieces."""
        messages = body.get("messages") or []
        conv = conversation(messages, body.get("model", ""), self.server_id)
        opts = body.get("options") or {}
        error, seen = self._images(model, messages, conv)
        items: list = []
        if think and model.thinking and "thinking" in model.capabilities and not model.think_tag:
            items += [("thinking", p, 1) for p in model.encoded_pieces(render(model.thinking, conv))]
        calls = tools.plan(model.rounds, body, conv, render, model.tool_call_ids)
        if calls:
            items.append(("tool_calls", calls, len(pieces(wire.go_json(calls)))))
        elif model.explicit_pieces is not None:
            items += [("content", wire.go_bytes(p), 1) for p in render(list(model.explicit_pieces), conv)]
        else:
            text = self._content(model, body, conv, opts, bool(seen))
            items += [("content", p, 1) for p in model.encoded_pieces(text, model.split_at)]
        done_reason = "stop"
        limit = opts.get("num_predict")
        if isinstance(limit, (int, float)) and 0 < limit < len(items):
            items, done_reason = items[:int(limit)], "length"
        ttft = timing.get("ttft_ms", model.ttft_ms) / 1000
        delay = timing.get("chunk_delay_ms", model.chunk_delay_ms) / 1000
        return Generation(items, ttft, delay, cancel, prompt_tokens(body), done_reason, error, seen)

    @staticmethod
    def _images(model: ModelScript, messages: list, conv: dict) -> tuple[str | None, list]:
        """(generation error, what the last turn's images are): Ollama's runner reads every image."""
        every = [i for m in messages for i in m.get("images") or [] if isinstance(i, str)]
        if not every:
            return None, []
        if "vision" not in model.capabilities:   # a text runner ignores images; a projector-less one fails
            return (NO_VISION if model.images_without_vision == "error" else None), []
        infos = {}
        for img in every:
            infos[img] = vision.describe(vision.decode(img))
            if infos[img] is None:
                return BAD_IMAGE, []
        seen = [infos[i] for i in last_turn_images(messages)]
        conv.update(images=vision.summary(seen), n_images=str(len(seen)))
        return None, seen

    def _content(self, model: ModelScript, body: dict, conv: dict, opts: dict, images: bool) -> str:
        messages = body.get("messages") or []
        reply = model.reply
        if messages and messages[-1].get("role") == "tool":
            reply = model.tool_reply
        elif images:
            reply = model.vision_reply
        if isinstance(reply, list):
            reply = reply[(int(conv["turns"]) - 1) % len(reply)] if reply else ""
        text = render(reply, conv)
        fmt = body.get("format")
        if fmt == "json" or isinstance(fmt, dict):
            if model.json_reply is not None:
                text = wire.go_json(render(model.json_reply, conv))
            elif isinstance(fmt, dict):
                text = wire.go_json(tools.from_schema(fmt, text))
            else:
                text = wire.go_json({"response": text})
        stops = opts.get("stop") or []
        cut_at = min((text.find(s) for s in stops if isinstance(s, str) and s and s in text), default=-1)
        text = text[:cut_at] if cut_at >= 0 else text
        if model.think_tag:                      # a server that leaves reasoning in content
            block = "<%s>%s" % (model.think_tag, render(model.thinking or "", conv))
            text = block + ("</%s>%s%s" % (model.think_tag, model.think_gap, text) if model.think_close else "")
        return text
