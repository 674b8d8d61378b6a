"""Scripted tool calling: which calls a model makes in which round, and what it says about the results.

A round is one assistant turn of tool calls. The round a request is in is the number of tool-call
turns (or tool-result groups) after the last user message, so ``tool_rounds[0]`` answers the user,
``tool_rounds[1]`` answers the first results, and once the rounds are used up the model answers in
text (``tool_reply``, which can quote ``{tool_results}``). A round is a list of calls
(``{"name", "arguments"}``, arguments are templates) or ``"auto"``: call the first tool the request
offers, with arguments built from its JSON schema (``from_schema``). Calls to tools the request does
not offer are dropped, as a constrained model would never make them.

Shapes are Ollama's ``api.ToolCall``: ``{"function": {"index", "name", "arguments"}}`` (arguments a
JSON object; Go encodes the ``map[string]any`` with sorted keys), plus ``"id": "call_..."`` first when
the script asks for ids (newer servers, and always on the OpenAI-compatible path).
"""
from __future__ import annotations

import hashlib

from . import wire

DEFAULT_TOOL_REPLY = "The tool returned: {tool_results}"


def from_schema(schema, text: str):
    """A small value that satisfies a JSON schema (what a constrained model would produce).

    ``const``, then ``enum[0]``, ``default``, ``examples[0]``, else by ``type``: objects get every
    property, arrays ``minItems`` (default 1) items, numbers their ``minimum`` (else 0), strings
    ``text``.
    """
    if not isinstance(schema, dict):
        return text
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    for key in ("enum", "examples"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties")
        return {k: from_schema(v, text) for k, v in props.items()} if isinstance(props, dict) else {}
    if kind == "array":
        n = schema.get("minItems", 1)
        n = n if isinstance(n, int) and 0 <= n <= 64 else 1
        return [from_schema(schema.get("items"), text) for _ in range(n)]
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        low = low if isinstance(low, (int, float)) and not isinstance(low, bool) else 0
        if "exclusiveMinimum" in schema and "minimum" not in schema:
            low += 1
        return int(low) if kind == "integer" else low
    return {"string": text, "boolean": False, "null": None}.get(kind, text)


def round_index(messages: list) -> int:
    """How many tool rounds happened since the last user message."""
    calls = groups = 0
    prev = None
    for msg in messages:
        role = msg.get("role")
        if role == "user":
            calls = groups = 0
        elif role == "assistant" and msg.get("tool_calls"):
            calls += 1
        elif role == "tool" and prev != "tool":
            groups += 1
        prev = role
    return max(calls, groups)


def tool_results(messages: list) -> str:
    """The results of the last round: ``name: content`` of each trailing tool message, ``; ``-joined."""
    names = {}
    for msg in messages:
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            if call.get("id"):
                names[call["id"]] = fn.get("name", "")
    out = []
    for msg in reversed(messages):
        if msg.get("role") != "tool":
            break
        name = msg.get("tool_name") or names.get(msg.get("tool_call_id"), "")
        text = str(msg.get("content") or "")
        out.append("%s: %s" % (name, text) if name else text)
    return "; ".join(reversed(out))


def offered(tools: list) -> list[dict]:
    """The ``function`` objects of the request's tools, in order."""
    return [t["function"] for t in tools or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]


def plan(rounds: list, body: dict, conv: dict, render, with_ids: bool) -> list:
    """The tool calls this request gets (``[]``: answer in text)."""
    functions = offered(body.get("tools"))
    if not rounds or not functions:
        return []
    index = round_index(body.get("messages") or [])
    if index >= len(rounds):
        return []
    spec = rounds[index]
    if spec == "auto":
        first = functions[0]
        wanted = [{"name": first.get("name", ""), "arguments": from_schema(first.get("parameters"), conv["last_user"])}]
    else:
        names = {f.get("name") for f in functions}
        wanted = [c.get("function", c) for c in spec]
        wanted = [c for c in wanted if c.get("name") in names]
        wanted = [{"name": c["name"], "arguments": render(c.get("arguments") or {}, conv)} for c in wanted]
    calls = []
    for call in wanted:
        shaped = {"function": {"index": len(calls), "name": call["name"],
                               "arguments": wire.sorted_map(call["arguments"])}}
        if with_ids:
            seed = repr((conv, index, len(calls))).encode()
            shaped = {"id": "call_" + hashlib.sha1(seed).hexdigest()[:8], **shaped}
        calls.append(shaped)
    return calls


def parse_rounds(spec: dict, name: str) -> list:
    """``tool_rounds``, or ``tool_calls`` as one round; checks their shapes."""
    if "tool_rounds" in spec and "tool_calls" in spec:
        raise ValueError("model %s: give tool_calls (one round) or tool_rounds, not both" % name)
    rounds = spec.get("tool_rounds")
    if rounds is None:
        calls = spec.get("tool_calls")
        rounds = [calls] if calls else []
    if not isinstance(rounds, list):
        raise ValueError("model %s: tool_rounds must be a list of rounds" % name)
    for r in rounds:
        if r != "auto" and not (isinstance(r, list) and all(isinstance(c, dict) and (c.get("function", c)).get("name")
                                                             for c in r)):
            raise ValueError('model %s: a tool round is "auto" or a list of {"name", "arguments"}' % name)
    return rounds
