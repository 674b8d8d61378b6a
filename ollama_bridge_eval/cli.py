"""Command line of the replay evaluation.

    scripts/eval BAG --topic /asr/text [--namespace /robot1] [--node NAME] [--remap ROLE:=TOPIC ...]
                 [--mode turn|realtime] [--rate 1.0] [--seed N] [--model M] [--out DIR]
                 [--expect FILE.yaml] [--timeout S] [--session-prefix P] [--no-reset]
    scripts/eval --compare REPORT_A.json REPORT_B.json
    scripts/eval --record OUT --topic /asr/text [--count N] [--timeout S]

Exit codes: 0 done (and every expectation passed), 1 some expectation failed, 2 bad input (bag,
topic, expect file, options), no bridge answering, or the bridge went away; 130 interrupted.
Errors are one line on stderr.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from . import EvalError, compare, expect, report
from .bag_input import read_utterances
from .graph import ROLES, parse_remaps
from .msgtypes import normalize_namespace
from .record import record
from .run import Replay, Settings, check_out, default_out, log
from .sessions import DEFAULT_PREFIX, Sessions

EXIT_OK, EXIT_EXPECT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (and exit 2, as argparse does)."""

    def error(self, message):
        raise EvalError(f"{message} (see --help)")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="eval", description="Replay the utterances of a recorded bag into a running "
                "ollama_bridge, record its answers and report latencies and (optionally) pass/fail scores.")
    p.add_argument("bag", nargs="?", help="rosbag2 folder (metadata.yaml), or a .mcap or .db3 file")
    p.add_argument("--topic", help="bag topic to play (std_msgs/msg/String or ollama_bridge_msgs/msg/Utterance); "
                   "with --record: the topic to record")
    p.add_argument("--namespace", help="namespace of the running bridge (default: wherever the only node "
                   "named --node runs)")
    p.add_argument("--node", default="ollama_bridge", help="the bridge's node name (default: %(default)s)")
    p.add_argument("--remap", action="append", default=[], metavar="ROLE:=TOPIC",
                   help="the bridge's topic or service for ROLE when the ROS graph cannot tell "
                   f"(ROLE: {', '.join(ROLES)}); repeatable")
    p.add_argument("--input", choices=("utterance", "speech_text"),
                   help="the bridge input to play into: utterance (default when the bridge has one: the replay's "
                   "own sessions) or speech_text (the bridge's 'default' session, shared with a live speech "
                   "recogniser)")
    p.add_argument("--session-prefix", default=DEFAULT_PREFIX,
                   help="the replay's own sessions are PREFIX + the bag's session (default: %(default)s)")
    p.add_argument("--mode", choices=("turn", "realtime"), default="turn",
                   help="turn: next utterance after the previous answer (default); realtime: bag timing")
    p.add_argument("--rate", type=_positive, default=1.0, help="realtime mode speed factor (default: 1.0)")
    p.add_argument("--seed", type=int, help='set "seed": N and "temperature": 0 in the bridge\'s options_json '
                   "for the run (restored afterwards)")
    p.add_argument("--model", help="set the bridge's model for the run (restored afterwards)")
    p.add_argument("--reset", action=argparse.BooleanOptionalAction, default=None,
                   help="reset the replay's own sessions before playing (default: on; a bridge without an "
                   "utterance input shares its 'default' session, reset only with an explicit --reset)")
    p.add_argument("--out", type=Path, help="output folder (default: eval_out/<timestamp>)")
    p.add_argument("--expect", help="YAML file of regexes the answers must / must not match")
    p.add_argument("--timeout", type=_positive, default=60.0,
                   help="seconds to wait for the bridge, and for an answer while the bridge is silent "
                   "(default: %(default)s)")
    p.add_argument("--compare", nargs=2, metavar=("REPORT_A", "REPORT_B"),
                   help="print two runs' report.json side by side as Markdown, and exit")
    p.add_argument("--record", type=Path, metavar="OUT",
                   help="record --topic into the new rosbag2 folder OUT (mcap) until Ctrl-C, and exit")
    p.add_argument("--count", type=int, help="with --record: stop after this many messages")
    return p


def _compare(paths: list[str]) -> int:
    reports = []
    for path in paths:
        try:
            reports.append(report.load(path))
        except (OSError, ValueError, KeyError) as err:
            raise EvalError(f"cannot read report {path!r}: {' '.join(str(err).split())}") from None
    print(compare.markdown(reports[0], reports[1], paths[0], paths[1]))
    return EXIT_OK


def _summary_lines(rep: dict, folder: Path) -> list[str]:
    s = rep["summary"]
    def fmt(v):
        return "–" if v is None else f"{v:.3f}s"
    lines = [f"{s['count']} utterance(s), {s['ok']} ok, {s['failures']} failed; first chunk p50 "
             f"{fmt(s['time_to_first_chunk_s']['p50'])} p95 {fmt(s['time_to_first_chunk_s']['p95'])}; total p50 "
             f"{fmt(s['total_time_s']['p50'])} p95 {fmt(s['total_time_s']['p95'])}"
             + (f"; {s['tokens_per_s_mean']:.1f} tokens/s" if s["tokens_per_s_mean"] else "")]
    if report.expect_score(rep):
        lines.append(f"expectations: {report.expect_score(rep)}")
    lines.append(f"report: {folder / 'report.md'}")
    return lines


def _replay(args) -> int:
    if not args.bag or not args.topic:
        raise EvalError("give a BAG and --topic (or --compare A B)")
    bag = read_utterances(args.bag, args.topic)
    expectations = expect.load(args.expect) if args.expect else None
    out = args.out or default_out()
    check_out(out)
    settings = Settings(None if args.namespace is None else normalize_namespace(args.namespace), args.node,
                        args.mode, args.rate, args.seed, args.model, args.reset, args.timeout,
                        parse_remaps(args.remap), args.session_prefix, args.input)
    Sessions(args.session_prefix)                      # a bad prefix is bad input, said before connecting
    outcome = Replay(bag, settings, out, expectations).run()
    print("\n".join(_summary_lines(outcome.report, outcome.folder)))
    if outcome.aborted == "interrupted":
        return EXIT_INTERRUPTED
    if outcome.aborted:
        raise EvalError(f"{outcome.aborted} (partial report in {outcome.folder})")
    rows = outcome.report["utterances"]
    if any(r["status"] == "timeout" for r in rows) and not any(r.get("answer") is not None for r in rows):
        raise EvalError(f"the bridge answered none of the utterances (silent for {args.timeout:g}s; "
                        f"report in {outcome.folder})")
    exp = outcome.report.get("expect")
    return EXIT_EXPECT_FAILED if exp and exp["failed"] else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Runs the command; returns the exit code."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)     # restore the bridge's parameters
    try:
        args = parser().parse_args(argv)
        if args.compare:
            if args.bag:
                raise EvalError("--compare takes two reports and no BAG")
            return _compare(args.compare)
        if args.record:
            if args.bag or not args.topic:
                raise EvalError("--record OUT takes a --topic and no BAG")
            record(args.record, args.topic, args.timeout, args.count, log)
            return EXIT_OK
        return _replay(args)
    except EvalError as err:
        print(f"eval: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        log("eval: interrupted")
        return EXIT_INTERRUPTED
