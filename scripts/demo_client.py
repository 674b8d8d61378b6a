"""The demo's conversation partner: publishes utterances to the bridge over ROS and prints each
answer live as its partials arrive, then a one-line summary.

    python scripts/demo_client.py --namespace /demo "Hello!" "What did I just say?"
    python scripts/demo_client.py --namespace /demo --interactive
    python scripts/demo_client.py --namespace /demo --speak "Hello!"   # with a TTS node: waits until it spoke

With ``--speak`` a text-to-speech node (``examples/espeak_tts_node.py``) speaks each answer: after an
answer the client waits (at most ``SPEAK_TIMEOUT_S``) until the TTS reports on ``spoken`` that it
said all of it (the answer's ``response_text``), and prints how many sentences that was.

DDS does not order two topics: a request's last partials can arrive after its final Response.
The final says how many partials were published for it (``Response.chunk_count``), so an answer
is finished only when that many pieces are here (or ``PIECES_GRACE_S`` passed): only then is the
rest printed, and the printed answer is always the final's ``text``.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from ollama_bridge_msgs.msg import Response, ResponseChunk, Spoken

COLOR = sys.stdout.isatty()
BOLD, DIM, RED, PLAIN = ("\033[1m", "\033[2m", "\033[31m", "\033[0m") if COLOR else ("", "", "", "")
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
#: the bridge's session of `speech_text` inputs
SESSION = "default"
#: how long to wait, after a final, for partials that are still travelling (seconds)
PIECES_GRACE_S = 5.0
#: with --speak: how long to wait for the text-to-speech node to say an answer (seconds)
SPEAK_TIMEOUT_S = 120.0
DEFAULT_UTTERANCES = [
    "Hello! Who are you?",
    "My name is Sam and I love gardening.",
    "What is my name, and what do I love?",
]


class Conversation:
    """Sends one utterance at a time and streams its answer to stdout.

    Partials are kept per request (``seq`` -> text) and printed in ``seq`` order as far as they are
    contiguous; those of requests already finished are dropped."""

    def __init__(self, node, namespace: str, out=sys.stdout, speak: bool = False):
        self.node, self.out, self.speak = node, out, speak
        self.pub = node.create_publisher(String, f"{namespace}/speech_text", DEEP)
        self.partials = node.create_subscription(ResponseChunk, f"{namespace}/response_partial", self.on_partial, DEEP)
        self.finals = node.create_subscription(Response, f"{namespace}/response_final", self.on_final, DEEP)
        self.cond = threading.Condition()
        self.pieces: dict[int, dict[int, str]] = {}      # request_id -> seq -> text
        self.responses: list[Response] = []               # finals not yet shown
        self.finished: set[int] = set()
        self.current: int | None = None                  # request being printed
        self.printed, self.printed_seq = "", 0           # of the current request: text, next seq
        self.speech: list[str] = []                       # response_text messages (what a TTS says)
        self.spoken: dict[int, str] = {}                  # request_id -> what the TTS said of it
        if speak:
            self.texts = node.create_subscription(String, f"{namespace}/response_text", self.on_text, DEEP)
            self.reports = node.create_subscription(Spoken, f"{namespace}/spoken", self.on_spoken, DEEP)

    def ready(self) -> bool:
        return (self.pub.get_subscription_count() > 0 and self.partials.get_publisher_count() > 0
                and self.finals.get_publisher_count() > 0
                and (not self.speak or self.reports.get_publisher_count() > 0))

    def on_text(self, msg: String):
        with self.cond:
            self.speech.append(msg.data)
            self.cond.notify_all()

    def on_spoken(self, report: Spoken):
        with self.cond:
            if report.session_id == SESSION:
                self.spoken[report.request_id] = report.text
                self.cond.notify_all()

    def on_partial(self, chunk: ResponseChunk):
        with self.cond:
            if chunk.session_id != SESSION or chunk.request_id in self.finished:
                return
            self.pieces.setdefault(chunk.request_id, {})[chunk.seq] = chunk.text
            if self.current is None:
                self.current = chunk.request_id
            if chunk.request_id == self.current:
                self._print_contiguous()
            self.cond.notify_all()

    def on_final(self, response: Response):
        with self.cond:
            if response.session_id == SESSION and response.request_id not in self.finished:
                self.responses.append(response)
                self.cond.notify_all()

    def _print_contiguous(self):
        """Prints the current request's pieces that follow what is printed, in seq order."""
        pieces = self.pieces.get(self.current, {})
        seq = self.printed_seq
        while seq in pieces:
            self.out.write(pieces[seq])
            self.printed += pieces[seq]
            seq += 1
        self.printed_seq = seq
        self.out.flush()

    def _start(self, request_id: int):
        if self.current != request_id:
            self.current, self.printed, self.printed_seq = request_id, "", 0
            self._print_contiguous()

    def _finish(self, response: Response):
        """Waits (bounded) for every piece of ``response``, then prints what is missing of its text."""
        rid = response.request_id
        deadline = time.monotonic() + PIECES_GRACE_S
        while len(self.pieces.get(rid, {})) < response.chunk_count and (left := deadline - time.monotonic()) > 0:
            self.cond.wait(left)
        self._start(rid)
        self._print_contiguous()
        if self.printed != response.text:
            if response.text.startswith(self.printed):
                self.out.write(response.text[len(self.printed):])
            else:
                self.out.write(f"\n{DIM}(pieces went missing; the whole answer:){PLAIN} {response.text}")
        self.finished.add(rid)
        self.pieces.pop(rid, None)
        self.current, self.printed, self.printed_seq = None, "", 0

    def ask(self, text: str, timeout: float) -> Response | None:
        print(f"\n{BOLD}you>{PLAIN} {text}\n{BOLD}robot>{PLAIN} ", end="", flush=True)
        with self.cond:
            self.responses.clear()
            self.current, self.printed, self.printed_seq = None, "", 0
            heard = len(self.speech)
            self.pub.publish(String(data=text))
            if not self.cond.wait_for(lambda: self.responses, timeout):
                print(f"\n(no answer within {timeout:.0f} s)", flush=True)
                return None
            response = self.responses.pop(0)
            self._finish(response)
        summarize(response)
        if self.speak and response.done_reason != "error" and response.text.strip():
            if not self._wait_spoken(response, heard):
                return None
        return response

    def _wait_spoken(self, response: Response, heard: int) -> bool:
        """Waits until the TTS node said the whole answer (the response_text after the first
        `heard` ones); prints a line saying so. False when it did not in time."""
        rid = response.request_id
        with self.cond:
            said = self.cond.wait_for(lambda: len(self.speech) > heard and self.spoken.get(rid) == self.speech[heard],
                                      SPEAK_TIMEOUT_S)
        if said:
            print(f"{DIM}[spoken by the text-to-speech node: {self.speech[heard]!r}]{PLAIN}", flush=True)
        else:
            print(f"{RED}[the text-to-speech node did not say the answer within {SPEAK_TIMEOUT_S:.0f} s]{PLAIN}",
                  flush=True)
        return said


def summarize(r: Response):
    if r.done_reason == "error":
        print(f"\n{RED}[error: {r.error}]{PLAIN}", flush=True)
        return
    tokens_per_s = r.eval_count / (r.eval_duration_ns / 1e9) if r.eval_duration_ns else 0.0
    print(f"\n{DIM}[first chunk {r.time_to_first_chunk_s * 1000:.0f} ms · {tokens_per_s:.0f} tokens/s · "
          f"{r.eval_count} tokens in {r.total_time_s:.2f} s · {r.model} · {r.done_reason}]{PLAIN}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("utterances", nargs="*", help="what to say (default: a three-turn conversation)")
    ap.add_argument("--namespace", default="", help="namespace of the bridge node")
    ap.add_argument("--interactive", action="store_true", help="read utterances from the terminal")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each answer")
    ap.add_argument("--speak", action="store_true", help="a text-to-speech node speaks the answers: wait for it")
    args = ap.parse_args()

    rclpy.init()
    node = rclpy.create_node("ollama_bridge_demo")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(executor, stop), daemon=True)
    spinner.start()
    conversation = Conversation(node, args.namespace.rstrip("/"), speak=args.speak)
    failures = 0
    try:
        ready = threading.Event()
        timer = node.create_timer(0.05, lambda: conversation.ready() and ready.set())
        if not ready.wait(30):
            print("the bridge node did not show up on ROS within 30 s", file=sys.stderr)
            return 1
        node.destroy_timer(timer)
        utterances = args.utterances or ([] if args.interactive else DEFAULT_UTTERANCES)
        for text in utterances:
            response = conversation.ask(text, args.timeout)
            failures += response is None or response.done_reason == "error"
        if args.interactive:
            print("\nType what the robot hears; an empty line or Ctrl-D ends the demo.")
            for line in sys.stdin:
                if not line.strip():
                    break
                response = conversation.ask(line.strip(), args.timeout)
                failures += response is None or response.done_reason == "error"
    except KeyboardInterrupt:
        print()
    finally:
        stop.set()
        spinner.join(2)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 1 if failures else 0


def _spin(executor, stop: threading.Event):
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
    except (ExternalShutdownException, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    sys.exit(main())
