"""The throughput part of ``bench/report.md``: target rows, notes and the section, from the runs of
``examples/chunk_probe.rs``. What was relayed is counted in answer pieces (from the bytes of the
answer text), not in messages: the bridge publishes pieces that were already received together,
so one ``response_partial`` may carry several pieces; the peer publishes one per piece."""
from __future__ import annotations

from bench_chart import LABELS
from bench_rows import MB, Row, fmt, ratio

SCENARIOS = {
    "default": "unpaced, Fast DDS defaults",
    "deep_shm": "unpaced, deeper shared-memory queues (`benches/fastdds_deep_shm.xml`)",
    "paced": "paced like a fast model, Fast DDS defaults",
}
RELAY_TARGET = 3.0         # bridge's pieces/s ÷ peer's
CPU_TARGET = 1 / 3         # bridge's CPU per piece ÷ peer's


def best(runs: list) -> dict:
    return max(runs, key=lambda r: r["pieces_per_s"])


def cpu_per_piece_us(run: dict) -> float:
    return 1e6 * run["cpu_s"] / max(1.0, run["pieces_relayed"])


def lost(run: dict) -> int:
    """Everything that makes a run lossy: pieces, messages, wrong texts, inputs, errors."""
    return (run["pieces_lost"] + max(0, run["messages_lost"]) + run["texts_wrong"] + run["inputs_lost"]
            + run["errors"])


def capacity(thr: dict) -> tuple[str, dict] | None:
    """The scenario the relay ratio is measured on: deep queues (the receiver's transport is then
    not the limit), else the defaults."""
    for name in ("deep_shm", "default"):
        data = thr["scenarios"].get(name)
        if data and data["runs"].get("bridge") and data["runs"].get("peer"):
            return name, data["runs"]
    return None


def rows(results: dict) -> list[Row]:
    thr = results.get("throughput")
    if not thr:
        return []
    out = []
    cap = capacity(thr)
    if cap:
        name, runs = cap
        bb, pb = best(runs["bridge"]), best(runs["peer"])
        rr = ratio(bb["pieces_per_s"], pb["pieces_per_s"])
        out.append(Row(f"relay: bridge's pieces/s ÷ peer's, best run of each ({SCENARIOS[name]})",
                       f"{fmt(rr, 2)}× ({bb['pieces_per_s']:.0f} with {bb['sessions']} sessions vs "
                       f"{pb['pieces_per_s']:.0f} with {pb['sessions']})", f"≥ {RELAY_TARGET:.0f}×", rr >= RELAY_TARGET,
                       f"{RELAY_TARGET * pb['pieces_per_s'] - bb['pieces_per_s']:.0f} pieces/s short"
                       if rr < RELAY_TARGET else ""))
        per_count = sorted(ratio(cpu_per_piece_us(b), cpu_per_piece_us(p)) for b, p in zip(runs["bridge"], runs["peer"]))
        rc = per_count[len(per_count) // 2]
        out.append(Row(f"CPU per piece: bridge ÷ peer at the same session count, median over "
                       f"{', '.join(str(r['sessions']) for r in runs['bridge'])} sessions ({SCENARIOS[name]})",
                       f"{fmt(rc, 2)} (each: {', '.join(fmt(x, 2) for x in per_count)})", "≤ 0.33",
                       rc <= CPU_TARGET, f"{fmt(rc - CPU_TARGET, 2)} over" if rc > CPU_TARGET else ""))
    for name, data in thr["scenarios"].items():
        runs = data["runs"].get("bridge", [])
        if not runs:
            continue
        bad = sum(lost(r) for r in runs)
        detail = ", ".join(f"{r['sessions']}: {r['pieces_lost']} pieces / {r['inputs_lost']} inputs"
                           + (f" / {r['messages_lost']} messages" if r["messages_lost"] else "")
                           + (f" / {r['texts_wrong']} wrong texts" if r["texts_wrong"] else "") for r in runs)
        out.append(Row(f"bridge: pieces + inputs lost, {', '.join(str(r['sessions']) for r in runs)} sessions "
                       f"({SCENARIOS[name]})", detail, "0", bad == 0,
                       f"{bad} lost of {sum(r['expected_pieces'] for r in runs)} pieces" if bad else ""))
    return out


def notes(thr: dict) -> list[str]:
    """Why a missed throughput target is missed, from the figures of this run."""
    out = []
    d = thr["scenarios"].get("default", {}).get("runs", {}).get("bridge", [])
    if any(lost(r) for r in d):
        per_msg = ", ".join(f"{r['sessions']}: {fmt(r['pieces_per_message'], 1)}" for r in d)
        out.append("- **Lost pieces with Fast DDS defaults, unpaced.** Fast DDS's shared-memory transport gives each "
                   "participant a port of 512 messages. When the messages of many streams arrive faster than a "
                   "receiving participant's listener thread drains its port (2 cores shared by the node, the "
                   "emulator and the probe), the transport drops them; reliable QoS repairs them only after the next "
                   "heartbeat exchange, and messages already overwritten in the writer's 1000-deep history are lost. "
                   "The node publishes the pieces it had already received when it falls behind as one message "
                   f"(pieces per message here, by sessions: {per_msg}); deeper ports "
                   "(`benches/fastdds_deep_shm.xml`, in every process) remove the limit.")
    cap = capacity(thr)
    if cap:
        name, runs = cap
        per_count = sorted(ratio(cpu_per_piece_us(b), cpu_per_piece_us(p)) for b, p in zip(runs["bridge"], runs["peer"]))
        if per_count[len(per_count) // 2] > CPU_TARGET:
            us = [cpu_per_piece_us(b) for b in runs["bridge"]]
            out.append(f"- **CPU per piece: the bridge spends {min(us):.1f}–{max(us):.1f} µs per piece, mostly in Fast DDS "
                       "and the kernel.** A `perf` profile of the node relaying one unpaced stream, one message per "
                       "piece (before coalescing): 52 % kernel (every message wakes the receiving process, every "
                       "HTTP read wakes a tokio worker), 19 % libfastrtps, 16 % the node's own code (HTTP, JSON, "
                       "message building), 9 % libc. The peer pays the same DDS and kernel costs plus Python.")
        bb, pb = best(runs["bridge"]), best(runs["peer"])
        total = bb["cpu_pct"] + bb.get("other_cpu_pct", 0) + bb.get("probe_cpu_pct", 0)
        if ratio(bb["pieces_per_s"], pb["pieces_per_s"]) < RELAY_TARGET and total > 170:
            out.append(f"- **Relay ratio: the machine is the limit.** In the bridge's best run the node, the emulator "
                       f"and the probe together used {total:.0f} % of the 2 cores ({bb['cpu_pct']:.0f} + "
                       f"{bb.get('other_cpu_pct', 0):.0f} + {bb.get('probe_cpu_pct', 0):.0f}), while the peer is "
                       f"bound by its one Python thread. The CPU per piece ratio is the machine-independent figure.")
    return out


def section(thr: dict) -> list[str]:
    L = ["## Relay throughput", "",
         f"N sessions each send the next utterance as soon as the previous answer is final, for {thr['seconds']} s; "
         f"every answer is the same {thr['pieces']}-piece text. The receiver is `examples/chunk_probe.rs` (r2r, "
         "reliable, depth 200,000, drained after every `spin_once`). Pieces are counted from the answer text "
         "received (bytes ÷ bytes per piece), messages are `response_partial` messages: the bridge publishes "
         "pieces it had already received together when it falls behind. *Lost pieces* = the final's text − the "
         "partials' text of every completed answer (after a 0.5 s drain), *lost messages* = `chunk_count` − "
         "partials received, *wrong texts* = answers whose partials joined in `seq` order are not the final's text; "
         "*lost inputs* = utterances with no final in time (the peer's input queue is 10 deep). CPU and RSS are the "
         "target process's, from /proc; the emulator and the probe share the same 2 cores (their CPU is in the last "
         "column: where target + emulator + probe approach 200 %, the machine, not the target, is the limit).", ""]
    for name, data in thr["scenarios"].items():
        L += [f"### {SCENARIOS[name]} ({data['chunk_delay_ms']} ms per piece per session)", "",
              "| target | sessions | pieces/s | messages/s | pieces per message | answers/s | lost pieces | "
              "lost messages | wrong texts | lost inputs | errors | CPU % of a core | CPU µs/piece | RSS MB (max) | "
              "TTFP p50 / p99 ms | emulator + probe CPU % |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for kind, runs in data["runs"].items():
            for r in runs:
                t = sorted(r.get("ttfp_ms") or [float("nan")])
                p50, p99 = t[len(t) // 2], t[min(len(t) - 1, int(len(t) * 0.99))]
                L.append(f"| {LABELS[kind]} | {r['sessions']} | {r['pieces_per_s']:.0f} | {r['messages_per_s']:.0f} | "
                         f"{fmt(r['pieces_per_message'], 2)} | {r['exchanges_per_s']:.1f} | {r['pieces_lost']} | "
                         f"{r['messages_lost']} | {r['texts_wrong']} | {r['inputs_lost']} | {r['errors']} | "
                         f"{r['cpu_pct']:.0f} | {cpu_per_piece_us(r):.1f} | {r['rss_kb_max'] / MB:.1f} | "
                         f"{fmt(p50, 1)} / {fmt(p99, 1)} | {r.get('other_cpu_pct', 0):.0f} + {r.get('probe_cpu_pct', 0):.0f} |")
        L.append("")
        if "bridge" in data["runs"] and "peer" in data["runs"]:
            L += ["| sessions | pieces/s bridge ÷ peer | CPU/piece bridge ÷ peer |", "| --- | --- | --- |"]
            for b, p in zip(data["runs"]["bridge"], data["runs"]["peer"]):
                L.append(f"| {b['sessions']} | {fmt(ratio(b['pieces_per_s'], p['pieces_per_s']), 2)}× | "
                         f"{fmt(ratio(cpu_per_piece_us(b), cpu_per_piece_us(p)), 2)} |")
            L.append("")
    return L
