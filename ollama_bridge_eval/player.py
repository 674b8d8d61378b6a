"""Playing utterances into the bridge and pairing each with its final response.

* turn mode: the next utterance is sent once the previous one's final Response arrived, so every
  run sees the same conversation state and runs are comparable;
* realtime mode: utterances are sent at the bag's own spacing divided by ``rate`` (like
  ``ros2 bag play``), whether or not earlier answers are done; then every answer is awaited.

Each utterance goes to the tool's own session for its bag session (see
:mod:`~ollama_bridge_eval.sessions`). A final Response belongs to the oldest sent, unanswered
utterance with the same (bridge) session and prompt (the bridge answers each session in order).
Waiting for an answer ends when nothing at all came from the bridge for ``timeout`` seconds (a
real model may stream for longer than that in total).

DDS does not order two topics: partials can arrive after their final. An answer is recorded only
once the final's ``chunk_count`` partials are here, or ``PIECES_GRACE_S`` after the final.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from .bag_input import Utterance
from .sessions import Sessions

GONE = "the bridge went away during the replay"
#: how long to wait, after a final, for its partials that are still travelling (seconds)
PIECES_GRACE_S = 5.0


@dataclass
class Result:
    """What happened to one utterance."""
    utterance: Utterance
    session_id: str = ""                   # the bridge session it was played into
    sent_wall_ns: int | None = None
    sent_mono: float | None = None
    final: object | None = None            # ollama_bridge_msgs/Response
    final_mono: float | None = None
    outcome: str = ""                      # "" answered, else "skipped: ...", "timeout", "not played"

    @property
    def answered(self) -> bool:
        return self.final is not None


@dataclass
class _Partials:
    first_mono: float
    texts: dict = field(default_factory=dict)     # seq -> text


class Tracker:
    """Receives the bridge's outputs (from the spin thread) and pairs finals with sent inputs."""

    def __init__(self):
        self.cond = threading.Condition()
        self.pending: dict[tuple[str, str], deque[Result]] = defaultdict(deque)
        self.partials: dict[int, _Partials] = {}
        self.spoken: list[str] = []
        self.unmatched_finals = 0
        self.last_activity = time.monotonic()

    def sent(self, result: Result):
        """Registers an input that was just published."""
        with self.cond:
            self.pending[(result.session_id, result.utterance.text)].append(result)

    def forget(self, result: Result):
        """Stops waiting for ``result`` (a late final then counts as unmatched)."""
        with self.cond:
            queue = self.pending.get((result.session_id, result.utterance.text))
            if queue and result in queue:
                queue.remove(result)

    def __call__(self, rel: str, msg, mono: float):
        with self.cond:
            self.last_activity = mono
            if rel == "response_partial":
                self.partials.setdefault(msg.request_id, _Partials(mono)).texts[msg.seq] = msg.text
            elif rel == "response_text":
                self.spoken.append(msg.data)
            else:
                queue = self.pending.get((msg.session_id, msg.prompt))
                if queue:
                    result = queue.popleft()
                    result.final, result.final_mono = msg, mono
                else:
                    self.unmatched_finals += 1
            self.cond.notify_all()

    def joined_partials(self, request_id: int) -> str:
        with self.cond:
            parts = self.partials.get(request_id)
            return "".join(parts.texts[k] for k in sorted(parts.texts)) if parts else ""

    def first_partial_mono(self, request_id: int) -> float | None:
        with self.cond:
            parts = self.partials.get(request_id)
            return parts.first_mono if parts else None

    def chunk_count(self, request_id: int) -> int:
        with self.cond:
            parts = self.partials.get(request_id)
            return len(parts.texts) if parts else 0

    def wait_answers(self, results: list[Result], timeout: float, stop: threading.Event) -> bool:
        """Until every result is answered (True), or the bridge was silent for ``timeout`` (False)."""
        with self.cond:
            while not all(r.answered for r in results):
                quiet_since = max([self.last_activity] + [r.sent_mono for r in results if r.sent_mono])
                left = quiet_since + timeout - time.monotonic()
                if left <= 0 or stop.is_set():
                    return False
                self.cond.wait(min(left, 0.25))
            return True

    def has_pieces(self, result: Result) -> bool:
        """Whether every partial published for ``result``'s answer arrived (``Response.chunk_count``)."""
        return not result.answered or self.chunk_count(result.final.request_id) >= result.final.chunk_count

    def wait_pieces(self, results: list[Result], grace: float = PIECES_GRACE_S) -> bool:
        """Until every answered result has all its partials (True), or ``grace`` passed (False)."""
        deadline = time.monotonic() + grace
        with self.cond:
            while not all(self.has_pieces(r) for r in results):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.25))
            return True

    def wait_settled(self, results: list[Result], timeout: float) -> bool:
        """Until every answer has all its partials and every spoken answer came on
        ``response_text`` (they travel on other topics than the final, so may trail it)."""
        def settled():
            spoken = list(self.spoken)
            for r in results:
                if not r.answered:
                    continue
                if not self.has_pieces(r):
                    return False
                speakable = not r.final.error and r.final.done_reason != "cancelled" and r.final.text.strip()
                if speakable:
                    if r.final.text not in spoken:
                        return False
                    spoken.remove(r.final.text)
            return True
        deadline = time.monotonic() + timeout
        with self.cond:
            while not settled():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.25))
            return True


class Player:
    """Sends utterances through a :class:`~ollama_bridge_eval.bridge.BridgeLink` in turn or
    realtime mode; ``stop`` (an Event) ends a run early, e.g. on Ctrl-C."""

    def __init__(self, link, tracker: Tracker, timeout: float, sessions: Sessions, log=print):
        self.link, self.tracker, self.timeout, self.log = link, tracker, timeout, log
        self.sessions = sessions
        self.stop = threading.Event()
        self.aborted = ""
        self.results: list[Result] = []          # of the current run, also when it is interrupted

    def interrupted(self) -> list[Result]:
        """Stops the run (Ctrl-C) and marks what was left unfinished; returns all results."""
        self.stop.set()
        self.aborted = "interrupted"
        for r in self.results:
            if not r.answered and not r.outcome:
                r.outcome = "interrupted" if r.sent_mono is not None else "not played"
        return self.results

    def _send(self, result: Result):
        u = result.utterance
        result.session_id = self.sessions.own(u.session_id)
        self.tracker.sent(result)
        result.sent_wall_ns, result.sent_mono = self.link.publish(result.session_id, u.text)

    def _skip_empty(self, results: list[Result]) -> list[Result]:
        """The bridge ignores blank inputs without answering: they are not played."""
        for r in results:
            if not r.utterance.text.strip():
                r.outcome = "skipped: empty text"
        return [r for r in results if not r.outcome]

    def _give_up(self, waiting: list[Result]):
        for r in waiting:
            if not r.answered:
                r.outcome = "timeout"
                self.tracker.forget(r)
        if not self.link.still_there():
            self.aborted = GONE

    @staticmethod
    def _not_played(rest: list[Result]):
        for r in rest:
            r.outcome = "not played"

    def play_turns(self, utterances: list[Utterance]) -> list[Result]:
        """One utterance at a time, each after the previous answer."""
        results = self.results = [Result(u) for u in utterances]
        playable = self._skip_empty(results)
        for n, result in enumerate(playable):
            if not self.aborted and not self.link.still_there():
                self.aborted = GONE
            if self.stop.is_set() or self.aborted:
                self._not_played(playable[n:])
                break
            self._send(result)
            if not self.tracker.wait_answers([result], self.timeout, self.stop):
                self._give_up([result])
            self._await_pieces([result])
            self.log(f"[{n + 1}/{len(playable)}] {self._describe(result)}")
        return results

    def play_realtime(self, utterances: list[Utterance], rate: float) -> list[Result]:
        """Sends at the bag's timing (scaled by ``rate``), then waits for every answer."""
        results = self.results = [Result(u) for u in utterances]
        playable = self._skip_empty(results)
        if not playable:
            return results
        t0, stamp0 = time.monotonic(), playable[0].utterance.stamp_ns
        for n, result in enumerate(playable):
            due = t0 + (result.utterance.stamp_ns - stamp0) / 1e9 / rate
            if self.stop.wait(max(0.0, due - time.monotonic())):
                self._not_played(playable[n:])
                break
            self._send(result)
        sent = [r for r in playable if r.sent_mono is not None]
        if not self.tracker.wait_answers(sent, self.timeout, self.stop):
            self._give_up(sent)
        self._await_pieces(sent)
        for result in sent:
            self.log(self._describe(result))
        return results

    def _await_pieces(self, results: list[Result]):
        """Lets the partials that trail their finals arrive (bounded) before an answer is recorded."""
        if not self.tracker.wait_pieces(results):
            for r in results:
                if not self.tracker.has_pieces(r):
                    self.log(f"note: #{r.utterance.index}: {self.tracker.chunk_count(r.final.request_id)} of "
                             f"{r.final.chunk_count} partials arrived")

    def settle(self, results: list[Result]) -> bool:
        """Lets trailing partials and response_text messages of the answers come in."""
        return self.tracker.wait_settled(results, min(self.timeout, 10.0))

    @staticmethod
    def _describe(result: Result) -> str:
        u = result.utterance
        if not result.answered:
            return f"#{u.index} {u.text!r}: {result.outcome}"
        f = result.final
        status = f.done_reason + (f": {f.error}" if f.error else "")
        return f"#{u.index} {u.text!r} -> {f.text!r} ({status}, {f.total_time_s:.2f}s)"
