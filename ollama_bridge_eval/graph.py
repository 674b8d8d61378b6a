"""Where the running bridge actually listens and publishes, read from the ROS graph.

A launch file may remap every name of the node (``speech_text`` -> ``/asr/text``, ...) and put it
in any namespace, so the tool asks the graph: the node (by name, and namespace when given) and
its subscriptions, publishers and services, each role recognised by its type (ROS ``rclpy``
``get_*_names_and_types_by_node``). A role given explicitly (``--remap ROLE:=TOPIC``) is taken
as given; when the node cannot be found, explicit names for every role that is needed suffice.

Roles (the node's own relative names) and their types:

========================  ====================================  ==========
role                      type                                   direction
========================  ====================================  ==========
``utterance``             ``ollama_bridge_msgs/msg/Utterance``   input
``speech_text``           ``std_msgs/msg/String``                input
``response_partial``      ``ollama_bridge_msgs/msg/ResponseChunk`` output
``response_final``        ``ollama_bridge_msgs/msg/Response``    output
``response_text``         ``std_msgs/msg/String``                output
``reset``                 ``ollama_bridge_msgs/srv/Reset``       service
========================  ====================================  ==========
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import EvalError
from .msgtypes import RESPONSE, RESPONSE_CHUNK, STRING, UTTERANCE, join_topic

RESET = "ollama_bridge_msgs/srv/Reset"
#: role -> (kind of endpoint, type)
ROLES = {"utterance": ("subscription", UTTERANCE), "speech_text": ("subscription", STRING),
         "response_partial": ("publisher", RESPONSE_CHUNK), "response_final": ("publisher", RESPONSE),
         "response_text": ("publisher", STRING), "reset": ("service", RESET)}
OUTPUTS = ("response_partial", "response_final", "response_text")
#: the node's other topics of a role's type, under their default names: never that role
NOT_A_ROLE = {"response_thinking", "response_sentence_text"}


@dataclass
class Endpoints:
    """The bridge as found: its node (``namespace`` + ``node``) and the full name of each role
    (None when it has no such endpoint)."""
    namespace: str
    node: str
    topics: dict[str, str | None] = field(default_factory=dict)
    found: bool = True                     # the node itself is in the graph

    @property
    def fqn(self) -> str:
        """The node's fully qualified name (its parameter services live under it)."""
        return join_topic(self.namespace, self.node)

    def __getitem__(self, role: str) -> str | None:
        return self.topics.get(role)


def parse_remaps(items: list[str]) -> dict[str, str]:
    """``["utterance:=/robot1/in", ...]`` -> ``{"utterance": "/robot1/in"}``; EvalError when malformed."""
    out = {}
    for item in items:
        role, sep, topic = item.partition(":=")
        if not sep or role not in ROLES or not topic.startswith("/"):
            raise EvalError(f"--remap {item!r}: expected ROLE:=/absolute/name with ROLE one of {', '.join(ROLES)}")
        out[role] = topic
    return out


def _pick(role: str, candidates: list[str]) -> str | None:
    """One of ``candidates`` for ``role``: the only one once the node's other topics of that type
    (``NOT_A_ROLE``, by their default names) are set aside, or the one named like the role."""
    if len(candidates) > 1:
        candidates = [c for c in candidates if c.rsplit("/", 1)[-1] not in NOT_A_ROLE] or candidates
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    named = [c for c in candidates if c.rsplit("/", 1)[-1] == role]
    if len(named) == 1:
        return named[0]
    raise EvalError(f"the bridge has several {ROLES[role][1]} {ROLES[role][0]}s ({', '.join(sorted(candidates))}): "
                    f"name the {role} one with --remap {role}:=TOPIC")


def _endpoints_of(node, name: str, namespace: str) -> dict[str, list[str]]:
    """Topic/service names of one node, by (kind, type)."""
    listings = {"subscription": node.get_subscriber_names_and_types_by_node(name, namespace or "/"),
                "publisher": node.get_publisher_names_and_types_by_node(name, namespace or "/"),
                "service": node.get_service_names_and_types_by_node(name, namespace or "/")}
    out: dict[tuple[str, str], list[str]] = {}
    for kind, listing in listings.items():
        for topic, types in listing:
            for t in types:
                out.setdefault((kind, t), []).append(topic)
    return out


def _namespaces_of(node, name: str) -> list[str]:
    return sorted({ns for n, ns in node.get_node_names_and_namespaces() if n == name})


def _normalize(ns: str) -> str:
    return "" if ns in ("", "/") else ns


#: how long an ``utterance`` input may trail the node's other endpoints in the graph (seconds)
INPUT_SETTLE_S = 2.0


def find(node, name: str, namespace: str | None, remaps: dict[str, str], need: tuple[str, ...],
         timeout: float) -> Endpoints:
    """The bridge node ``name`` (in ``namespace``; None = wherever the only such node is) and its
    endpoints, waiting up to ``timeout`` s for the graph to show them. Every role of ``need``, and
    one input (``utterance`` or ``speech_text``), must be known: found, or given in ``remaps``.
    Endpoints of one node show up one by one, so a found ``speech_text`` without ``utterance``
    is only taken after ``INPUT_SETTLE_S`` more. Raises EvalError saying what is missing."""
    deadline = time.monotonic() + timeout
    speech_only_since = None
    while True:
        spaces = _namespaces_of(node, name)
        if namespace is None and len(spaces) > 1:
            raise EvalError(f"several nodes named {name} run (namespaces {', '.join(spaces)}): "
                            "choose one with --namespace")
        ns = namespace if namespace is not None else (_normalize(spaces[0]) if spaces else "")
        present = (ns or "/") in spaces
        listing = {}
        if present:
            try:
                listing = _endpoints_of(node, name, ns)
            except Exception:  # noqa: BLE001 - the node left between the two graph queries
                present = False
        topics = {role: _pick(role, listing.get(key, [])) for role, key in ROLES.items()} | remaps
        missing = [r for r in need if not topics[r]]
        if not (topics["utterance"] or topics["speech_text"]):
            missing.append("utterance or speech_text subscription")
        now = time.monotonic()
        if not missing:
            speech_only_since = speech_only_since or now
            if topics["utterance"] or now - speech_only_since >= INPUT_SETTLE_S or now >= deadline:
                return Endpoints(ns, name, topics, present)
        elif now >= deadline:
            seen = (f"node {join_topic(ns, name)} has no {', '.join(missing)}" if present
                    else f"no node {name} in the graph")
            raise EvalError(f"no ollama_bridge answering under namespace '{ns or '/'}' within {timeout:g}s "
                            f"({seen}); start the node first, or name it with --node / --namespace / "
                            "--remap ROLE:=TOPIC")
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
