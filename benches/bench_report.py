"""``bench/report.md`` (targets as ratios first, then the figures behind them) and
``bench/latency.png`` (``bench_chart.py``), from ``bench.py``'s results.

The targets table is made by the functions in ``TARGETS``, one per phase, each ``results ->
list[Row]`` (``bench_rows.Row``) and empty when its phase did not run: a new target is a new
function (or a row in an existing one), a new phase a new function in the list.
"""
from __future__ import annotations

from pathlib import Path

import bench_throughput
from bench_chart import LABELS, write as write_chart
from bench_rows import MB, Row, fmt, ratio, table
from failover import section as failover_section, target_rows as failover_rows
from long_conversation import section as long_section, target_rows as long_rows
from speaking import section as speaking_section, target_rows as speaking_rows

FLOOR_TARGET = 1.5      # bridge's added time to first partial ÷ the r2r round trip, p50 and p99
PEER_TARGET = 2.5       # the rclpy peer's added time to first partial ÷ the bridge's, p50
COMPARE_TARGET = 1.1    # bridge's added p50 ÷ the --compare-node build's (latency unchanged)


def added(s: dict, k: str, p: str) -> float:
    """What path ``k`` adds to the direct client's percentile ``p``."""
    return s[k][p] - s["direct"][p]


def pacing_tag(data: dict) -> str:
    return f"[{data['pause_ms']} ms pause]" if data["pause_ms"] else "[back-to-back]"


def latency_rows(results: dict) -> list[Row]:
    lat = results.get("latency")
    if not lat:
        return []
    rows = []
    for data in lat["pacings"].values():
        s, tag = data["summary"], pacing_tag(data)
        for p in ("p50", "p99"):
            b, f = added(s, "bridge", p), s["floor"][p]
            r = ratio(b, f)
            rows.append(Row(f"{tag} bridge's added time to first partial {p} ÷ r2r round-trip floor {p}",
                            f"{fmt(r, 2)}× ({fmt(b)} ms ÷ {fmt(f)} ms)", f"≤ {FLOOR_TARGET}×", r <= FLOOR_TARGET,
                            f"{fmt(b - FLOOR_TARGET * f)} ms over" if r > FLOOR_TARGET else ""))
        b, peer = added(s, "bridge", "p50"), added(s, "peer", "p50")
        r = ratio(peer, b) if b > 0 else float("inf")
        rows.append(Row(f"{tag} rclpy peer's added p50 ÷ bridge's added p50",
                        f"{'∞ (bridge adds ≤ 0)' if b <= 0 else fmt(r, 1) + '×'} ({fmt(peer)} ms vs {fmt(b)} ms)",
                        f"≥ {PEER_TARGET}×", r >= PEER_TARGET,
                        f"needs bridge ≤ {fmt(peer / PEER_TARGET)} ms" if r < PEER_TARGET else ""))
        if "compare" in s:
            c = added(s, "compare", "p50")
            r = ratio(b, c)
            rows.append(Row(f"{tag} first partial at model pacing: bridge's added p50 ÷ the `--compare-node` build's",
                            f"{fmt(r, 2)}× ({fmt(b)} ms vs {fmt(c)} ms)", f"≤ {COMPARE_TARGET}×", r <= COMPARE_TARGET,
                            f"{fmt(b - COMPARE_TARGET * c)} ms over" if r > COMPARE_TARGET else ""))
    return rows


def memory_rows(results: dict) -> list[Row]:
    mem = results.get("memory")
    if not mem:
        return []
    ri = ratio(mem["bridge_idle_kb"], mem["echo_idle_kb"])
    add = (mem["bridge_after_kb"] - mem["bridge_idle_kb"]) / MB
    return [Row("idle RSS: bridge ÷ minimal r2r node", f"{fmt(ri, 2)}× ({mem['bridge_idle_kb'] / MB:.1f} MB ÷ "
                f"{mem['echo_idle_kb'] / MB:.1f} MB)", "≤ 1.25×", ri <= 1.25,
                f"{(mem['bridge_idle_kb'] - 1.25 * mem['echo_idle_kb']) / MB:.1f} MB over" if ri > 1.25 else ""),
            Row(f"RSS added by {mem['sessions']} sessions × {mem['exchanges']} exchanges", f"{add:.1f} MB",
                "< 30 MB", add < 30, f"{add - 30:.1f} MB over" if add >= 30 else "")]


def startup_rows(results: dict) -> list[Row]:
    st = results.get("startup")
    if not st:
        return []
    worst = st["bridge"]["max"]
    return [Row(f"start → ready (all topics and services discoverable), worst of {st['bridge']['n']}",
                f"{worst:.3f} s (p50 {st['bridge']['p50']:.3f} s)", "< 1 s", worst < 1.0)]


def long_conversation_rows(results: dict) -> list[tuple]:
    long = results.get("long_conversation")
    return long_rows(long) if long else []


def failover_target_rows(results: dict) -> list[tuple]:
    return failover_rows(results["failover"]) if results.get("failover") else []


TARGETS = [latency_rows, bench_throughput.rows, memory_rows, startup_rows, long_conversation_rows, speaking_rows,
           failover_target_rows]


def write(results: dict, out: Path) -> Path:
    meta = results.get("meta", {})
    L = []   # noqa: N806 - the report's lines
    L += ["# ollama_bridge benchmark report", ""]
    shared = meta.get("loadavg_start", "0").split()[0]
    L += [f"{meta.get('mode', '?')} run of `scripts/bench`, started {meta.get('started')}, {fmt(meta.get('seconds', 0), 0)} s; "
          f"{meta.get('cores')} cores; load average {meta.get('loadavg_start')} at the start, {meta.get('loadavg_end')} at the end"
          + (" (**the machine was shared with other work during the run**: absolute numbers are noisy; the ratios "
             "compare runs made in the same conditions)" if float(shared) > 0.5 else "") + ".", ""]
    L += ["## Targets", ""] + table([row for rows in TARGETS for row in rows(results)]) + [""]
    L += notes(results)
    lat, thr, mem, st, long = (results.get(k) for k in ("latency", "throughput", "memory", "startup", "long_conversation"))
    if lat:
        L += latency_section(lat)
    if thr:
        L += bench_throughput.section(thr)
    if mem:
        L += memory_section(mem)
    if st:
        L += [f"## Start-up", "",
              f"From `exec` of the node to every topic (`speech_text`, `utterance`, `response_partial`, "
              f"`response_final`, `response_text`) matched and every service (`reset`, `set_model`, "
              f"`get/set_parameters`) answering discovery, seen from an rclpy client already running: "
              f"p50 {st['bridge']['p50']:.3f} s, max {st['bridge']['max']:.3f} s over {st['bridge']['n']} starts. "
              f"The minimal r2r echo node (topics only): p50 {st['echo']['p50']:.3f} s, max {st['echo']['max']:.3f} s.", ""]
    if long:
        L += long_section(long)
    L += speaking_section(results)
    if results.get("failover"):
        L += failover_section(results["failover"])
    L += method_section(meta)
    out.mkdir(parents=True, exist_ok=True)
    if lat:
        write_chart(lat, out / "latency.png")
    path = out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path


def notes(results: dict) -> list[str]:
    """Why a missed target is missed, from the figures of this run."""
    out = []
    lat = results.get("latency")
    for pacing, data in (lat["pacings"].items() if lat else ()):
        s = data["summary"]
        b, peer, f = added(s, "bridge", "p50"), added(s, "peer", "p50"), s["floor"]["p50"]
        if b > 0 and peer / b < PEER_TARGET:
            out.append(f"- **{pacing}, p50: the peer adds {fmt(peer / b, 1)}× the bridge's added latency, short of "
                       f"{PEER_TARGET}× by {fmt((b - peer / PEER_TARGET) * 1e3, 0)} µs.** {PEER_TARGET}× below this "
                       f"peer ({fmt(peer)} ms) means adding at most {fmt(peer / PEER_TARGET)} ms, "
                       f"{fmt(peer / PEER_TARGET / f, 2)}× the {fmt(f)} ms rclpy → r2r → rclpy floor that every "
                       f"bridge's path contains; the bridge adds {fmt(b)} ms ({fmt(b / f, 2)}× the floor).")
        for p in ("p50", "p99"):
            b, f = added(s, "bridge", p), s["floor"][p]
            if b > FLOOR_TARGET * f:
                n = s["bridge"]["n"]
                out.append(f"- **{pacing}, {p}: bridge's added latency {fmt(b / f, 2)}× the floor** ({fmt(b)} vs "
                           f"{fmt(f)} ms). " + ("A p99 of " + str(n) + " samples is set by its few slowest requests "
                           "(see the tail of the chart); on a machine shared with other work these are mostly "
                           "scheduling delays. " if p == "p99" else "") + "Beyond the floor's and the direct "
                           "client's paths the bridge has one thread hand-off (the spin thread wakes a tokio "
                           "worker for the request), plus its bookkeeping (session, history, request JSON).")
    if results.get("throughput"):
        out += bench_throughput.notes(results["throughput"])
    return (["## Why targets are missed", ""] + out + [""]) if out else []


def latency_section(lat: dict) -> list[str]:
    L = ["## Latency: publish → first `response_partial`", "",
         "Each request is a new session (so every request carries the same system + user messages as the direct "
         "clients'), sent after the previous answer's final; the probe is rclpy. *Added* = the target's percentile "
         "minus the direct reqwest client's same percentile on the same emulator and pacing. The *floor* is one "
         "rclpy → r2r → rclpy round trip through `examples/echo_node.rs` (same message types and QoS).", "",
         "![latency distributions](latency.png)", ""]
    for pacing, data in lat["pacings"].items():
        s = data["summary"]
        L += [f"### {pacing} ({data['pause_ms']} ms idle between requests)" if data["pause_ms"] else f"### {pacing}", "",
              "| path | n | p50 ms | p95 ms | p99 ms | added p50 | added p95 | added p99 |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for k in ("direct", "direct_py", "floor", "bridge", "compare", "peer", "poll"):
            if k not in s:
                continue
            v = s[k]
            add = ["—", "—", "—"] if k in ("direct", "floor") else [fmt(v[p] - s["direct"][p]) for p in ("p50", "p95", "p99")]
            L.append(f"| {LABELS[k]} | {v['n']} | {fmt(v['p50'])} | {fmt(v['p95'])} | {fmt(v['p99'])} | "
                     + " | ".join(add) + " |")
        L.append("")
    idle = lat.get("idle_cpu_pct", {})
    s = lat["pacings"]["paused"]["summary"]
    L += ["### Spin loop: waiting vs polling", "",
          "The node's spin thread blocks in `spin_once(100 ms)` (rcl's wait set returns as soon as a message arrives; "
          "the timeout only bounds how fast shutdown is noticed) and then drains r2r's queues. The same echo node "
          "with a polling loop (`spin_once(0)` then `sleep(10 ms)`, as in r2r's examples) measured in the same runs:", "",
          "| spin loop | p50 ms | p99 ms | idle CPU % |", "| --- | --- | --- | --- |",
          f"| wait in `spin_once` (the node's) | {fmt(s['floor']['p50'])} | {fmt(s['floor']['p99'])} | {fmt(idle.get('floor'), 2)} |",
          f"| poll + 10 ms sleep | {fmt(s['poll']['p50'])} | {fmt(s['poll']['p99'])} | {fmt(idle.get('poll'), 2)} |", "",
          f"Polling adds {fmt(s['poll']['p50'] - s['floor']['p50'])} ms at p50 and {fmt(s['poll']['p99'] - s['floor']['p99'])} ms "
          f"at p99 to every message and wakes the CPU 100 times a second. Idle CPU of the bridge: "
          f"{fmt(idle.get('bridge'), 2)} %, of the rclpy peer: {fmt(idle.get('peer'), 2)} %.", ""]
    return L


def memory_section(mem: dict) -> list[str]:
    load = mem.get("load", {})
    return ["## Memory (RSS from /proc)", "",
            "| process | RSS MB |", "| --- | --- |",
            f"| minimal r2r node (`examples/echo_node.rs`), idle | {mem['echo_idle_kb'] / MB:.1f} |",
            f"| ollama_bridge, idle after start | {mem['bridge_idle_kb'] / MB:.1f} |",
            f"| ollama_bridge, idle after one exchange (HTTP client built) | {mem['bridge_after_one_kb'] / MB:.1f} |",
            f"| ollama_bridge, peak during {mem['sessions']} sessions × {mem['exchanges']} exchanges | "
            f"{load.get('rss_kb_max', 0) / MB:.1f} |",
            f"| ollama_bridge, idle after them (every history kept) | {mem['bridge_after_kb'] / MB:.1f} |",
            f"| rclpy peer bridge, idle | {mem['peer_idle_kb'] / MB:.1f} |", "",
            f"The load: {load.get('finals', 0)} answers in {fmt(mem.get('load_seconds'), 1)} s, lost pieces "
            f"{load.get('pieces_lost')}, lost inputs {load.get('inputs_lost')}, errors {load.get('errors')}; each exchange "
            f"is a 60-character utterance and a {mem.get('answer_words')}-word answer (default `max_history_turns` 20, "
            f"`max_sessions` 1000, `max_concurrent_requests` 4). The histories hold "
            f"{mem.get('history_text_bytes', 0) / 1024 / 1024:.1f} MB of text; the rest of the growth is per-turn and "
            f"per-session bookkeeping, allocator arenas and Fast DDS buffers (writer histories of up to 1000 messages "
            f"per output topic).", ""]


def method_section(meta: dict) -> list[str]:
    models = meta.get("models", {})
    b = models.get("bench", {})
    compare = meta.get("options", {}).get("compare_node")
    return ["## How it was measured", "",
            f"- Ollama emulator (`ollama_server`, scripted backend) on loopback; latency model: time to first token "
            f"{b.get('ttft_ms')} ms, {b.get('chunk_delay_ms')} ms per chunk, a {len(b.get('reply', '').split())}-word "
            f"answer. Every latency figure is {meta.get('options', {}).get('requests')} requests after warm-up, split "
            f"into {meta.get('options', {}).get('rounds')} interleaved rounds (direct, ollama-python, floor, bridge, "
            f"peer, polling echo) so drift in the machine's load hits all paths alike.",
            "- The direct client is `examples/direct_stream.rs`: the crate's `ollama_bridge::ollama::Client` (reqwest) "
            "on a 2-worker tokio runtime like the node's, timing send → first content chunk.",
            "- The peer is `benches/rclpy_peer_bridge.py`: rclpy + ollama-python `chat(stream=True)` in the "
            "subscription callback, queue depth 10, `rclpy.spin`.",
            f"- Node: `{meta.get('node')}`, default parameters except `ollama_url`, `model`, `system_prompt` and "
            "`max_concurrent_requests` 100 for the latency and throughput runs. Private ROS domain "
            f"{meta.get('ros_domain_id')}, `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`, Fast DDS.",
            "- Every process runs in the bench's own session: with the kernel's scheduler autogroups, a node started "
            "in a session of its own (setsid) is given CPU as a group, which on 2 cores leaves the emulator and the "
            "probe one core between them and makes the probe lose messages under load.",
            *([f"- `--compare-node {compare}`: that build of the node, started like the bridge, measured in the "
                "same interleaved latency rounds (*compare*)."] if compare not in (None, "None") else []),
            "- Raw numbers: `bench/results.json`; process logs: `bench/logs/`.", ""]
