"""One replay, start to end: find the running bridge in the ROS graph, apply ``--model``/``--seed``
(and restore them afterwards, whatever happens), reset the replay's own sessions, play, record,
and write the output bag, report.json, report.md and latency.png.
"""
from __future__ import annotations

import datetime
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import EvalError, __version__, chart, expect, report
from .bag_input import BagInput
from .bridge import BridgeLink
from .graph import OUTPUTS
from .msgtypes import DEFAULT_SESSION, OUTPUT_TOPICS, STRING, UTTERANCE
from .player import Player, Tracker
from .recorder import Recorder
from .sessions import DEFAULT_PREFIX, Sessions

#: bridge parameters copied into the report (when its parameter service answers)
REPORTED_PARAMS = ("model", "options_json", "system_prompt")


@dataclass
class Settings:
    """What the command line asked for."""
    namespace: str | None                  # None: wherever the only node named `node` runs
    node: str = "ollama_bridge"
    mode: str = "turn"
    rate: float = 1.0
    seed: int | None = None
    model: str | None = None
    reset: bool | None = None              # None: the replay's own sessions, not a shared `default`
    timeout: float = 60.0
    remaps: dict = field(default_factory=dict)
    session_prefix: str = DEFAULT_PREFIX
    input: str | None = None               # "utterance" / "speech_text"; None: utterance when there is one


@dataclass
class Outcome:
    """Where the results went and how the run ended."""
    folder: Path
    report: dict
    aborted: str = ""


def log(text: str):
    """Progress goes to stderr; stdout keeps the summary."""
    print(text, file=sys.stderr, flush=True)


def default_out() -> Path:
    """``eval_out/<timestamp>`` (with a suffix when that exists already)."""
    base = Path("eval_out") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def check_out(folder: Path):
    """The output folder must be new or empty."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise EvalError(f"output folder {str(folder)!r} exists and is not empty")


class Replay:
    """A replay of ``bag`` into the bridge described by ``settings``."""

    def __init__(self, bag: BagInput, settings: Settings, out: Path, expectations=None):
        self.bag, self.settings, self.out, self.expectations = bag, settings, out, expectations
        self.tracker, self.recorder = Tracker(), Recorder()
        self.saved: dict[str, str] = {}          # parameters to restore, in the order they were set
        self.applied: dict[str, str] = {}
        self.bridge_params: dict[str, str] = {}
        self.sessions: Sessions | None = None
        self.reset_done: list[str] = []
        self.endpoints, self.input_topic, self.played_sessions = None, None, set()

    def _apply(self, link: BridgeLink):
        """--model, then --seed (merged into the bridge's current options_json)."""
        s, t = self.settings, min(self.settings.timeout, 15.0)
        if s.model is not None:
            self.saved["model"] = link.get_string_param("model", t)
            link.set_string_param("model", s.model, t)
            self.applied["model"] = s.model
        if s.seed is not None:
            current = link.get_string_param("options_json", t)
            try:
                options = json.loads(current) if current.strip() else {}
            except ValueError:
                options = {}
            options = (options if isinstance(options, dict) else {}) | {"seed": s.seed, "temperature": 0}
            self.saved["options_json"] = current
            link.set_string_param("options_json", json.dumps(options), t)
            self.applied["options_json"] = json.dumps(options)

    def _restore(self, link: BridgeLink):
        for name, value in reversed(list(self.saved.items())):
            try:
                link.set_string_param(name, value, min(self.settings.timeout, 15.0))
            except EvalError as err:
                log(f"warning: could not restore {name}={value!r}: {err}")

    def _read_params(self, link: BridgeLink):
        """The bridge parameters in effect, for the report (skipped if the service is absent)."""
        if not link.get_params_client.wait_for_service(timeout_sec=min(self.settings.timeout, 2.0)):
            return
        for name in REPORTED_PARAMS:
            try:
                self.bridge_params[name] = link.get_string_param(name, 5.0)
            except EvalError:
                return

    def _connect(self, link: BridgeLink):
        """Finds the bridge, chooses its input (own sessions on ``utterance`` when it has one) and
        waits until everything needed is matched."""
        s = self.settings
        log(f"looking for node {s.node} " + (f"under '{s.namespace or '/'}'" if s.namespace is not None else
                                              "in the ROS graph") + f" (up to {s.timeout:g}s)")
        endpoints = link.locate(s.node, s.namespace, s.remaps, need_reset=s.reset is not False, timeout=s.timeout)
        shared = s.input == "speech_text" or not endpoints["utterance"]
        if not endpoints["speech_text" if shared else "utterance"]:
            raise EvalError(f"the bridge {endpoints.fqn} has no {'speech_text' if shared else 'utterance'} input")
        if shared and self.bag.msgtype == UTTERANCE and {u.session_id for u in self.bag.utterances} - {DEFAULT_SESSION}:
            raise EvalError(f"played into the speech input {endpoints['speech_text']}, every utterance is in "
                            "session 'default': the bag's sessions cannot be kept apart")
        self.sessions = Sessions(s.session_prefix, shared=shared)
        link.attach(endpoints, "speech_text" if shared else "utterance")
        self.endpoints, self.input_topic, self.played_sessions = endpoints, link.input_topic, link.sessions
        self.recorder.declare(link.input_topic, STRING if shared else UTTERANCE)
        for role in OUTPUTS:
            self.recorder.declare(endpoints[role], OUTPUT_TOPICS[role])
        log(f"bridge {endpoints.fqn}: input {link.input_topic}, outputs "
            + ", ".join(endpoints[r] for r in OUTPUTS))
        link.wait_ready(s.timeout, need_reset=self._resets(), need_params=s.model is not None or s.seed is not None)

    def _resets(self) -> bool:
        """Whether sessions are reset before playing: the replay's own always (unless --no-reset),
        the bridge's shared ``default`` only with an explicit --reset."""
        return self.settings.reset is True or (self.settings.reset is None and not self.sessions.shared)

    def _reset_sessions(self, link: BridgeLink):
        if self.sessions.shared:
            log(f"note: the replay goes to the bridge's speech input {self.input_topic}, session "
                f"'{DEFAULT_SESSION}' " + ("(reset first: --reset)" if self._resets() else
                                           "(not reset: the replay continues that conversation)"))
        if not self._resets():
            return
        for session in self.sessions.all_of(u.session_id for u in self.bag.utterances if u.text.strip()):
            link.reset(session, min(self.settings.timeout, 15.0))
            self.reset_done.append(session)

    def run(self) -> Outcome:
        s = self.settings
        link = BridgeLink(self.tracker, self.recorder)
        results, start, start_wall, wall_time = [], time.monotonic(), time.time(), 0.0
        try:
            self._connect(link)
            player = Player(link, self.tracker, s.timeout, self.sessions, log)
            try:
                self._apply(link)
                self._reset_sessions(link)
                self._read_params(link)
                log(f"playing {len(self.bag.utterances)} utterance(s) of {self.bag.topic} in {s.mode} mode")
                start_wall, start = time.time(), time.monotonic()
                try:
                    if s.mode == "turn":
                        results = player.play_turns(self.bag.utterances)
                    else:
                        results = player.play_realtime(self.bag.utterances, s.rate)
                except KeyboardInterrupt:
                    results = player.interrupted()
                if not player.aborted and not player.settle(results):
                    log("note: some partials or response_text messages did not arrive")
                wall_time = time.monotonic() - start
            finally:
                self._restore(link)
        finally:
            link.close()
        return self._write(results, start, start_wall, wall_time, player.aborted)

    def _header(self, start_wall: float, aborted: str) -> dict:
        s, bag = self.settings, self.bag
        return {"tool": "ollama_bridge_eval", "version": __version__,
                "created": datetime.datetime.fromtimestamp(start_wall).astimezone().isoformat(timespec="seconds"),
                "bag": {"path": bag.path, "topic": bag.topic, "type": bag.msgtype, "storage": bag.storage,
                        "metadata_version": bag.metadata_version, "utterances": len(bag.utterances)},
                "bridge": {"namespace": self.endpoints.namespace, "node": self.endpoints.node,
                           "input_topic": self.input_topic, "topics": self.endpoints.topics,
                           "sessions": sorted(self.played_sessions), "reset_sessions": self.reset_done,
                           "parameters": self.bridge_params},
                "settings": {"mode": s.mode, "rate": s.rate, "seed": s.seed, "model": s.model,
                             "reset": self._resets(), "timeout": s.timeout, "session_prefix": s.session_prefix,
                             "remaps": s.remaps, "applied": self.applied},
                "output_bag": "bag", "aborted": aborted}

    def _write(self, results, start: float, start_wall: float, wall_time: float, aborted: str) -> Outcome:
        rep = report.build(results, self.tracker, start, wall_time, self._header(start_wall, aborted))
        if self.expectations is not None:
            expect.score(rep, self.expectations)
        self.out.mkdir(parents=True, exist_ok=True)
        self.recorder.write(self.out / "bag", {"ollama_bridge_eval.bag": self.bag.path,
                                               "ollama_bridge_eval.topic": self.bag.topic,
                                               "ollama_bridge_eval.mode": self.settings.mode})
        report.write(rep, self.out)
        title = f"Latency per utterance - {rep['summary']['model'] or 'no answer'} ({self.settings.mode})"
        chart.write(rep["utterances"], title, self.out / "latency.png")
        return Outcome(self.out, rep, aborted)
