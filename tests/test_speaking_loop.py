"""The whole speaking loop with the real espeak-ng: speech in on `speech_text` → the node's
sentences → `examples/espeak_tts_node.py --wav-dir` writes one WAV file per sentence → `spoken`
back to the node → barge-in (a new input while sentences remain) → the cancelled answer enters the
history only as far as it was spoken, which the next request sent to the emulator shows."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from harness import DEEP, Recorder, SpeechTopics, fresh_namespace, wait_until
from helpers import SYSTEM, assistant, messages, user
from ollama_bridge_msgs.msg import Spoken

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

STORY = ("Once upon a time a small robot lived in a lab. Every morning it watered the plants. "
         "One day the water tank was empty. The robot rolled to the kitchen to find more. "
         "There it met a curious cat. The cat followed it back to the lab. "
         "Together they watered every plant. And they were friends from then on.")
STORY_SENTENCES = 8


class TtsNode:
    """`examples/espeak_tts_node.py` in its own process, in namespace `ns`, writing WAVs to `wav_dir`."""

    def __init__(self, ns: str, wav_dir: Path, logs_dir: Path):
        self.log_path = logs_dir / f"tts{ns.replace('/', '_')}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "examples/espeak_tts_node.py"), "--wav-dir",
                                      str(wav_dir), "--ros-args", "-r", f"__ns:={ns}"],
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def loop(ros, start_bridge, emu, tmp_path, logs_dir):
    """A node with barge_in, the espeak-ng TTS node and the test's recorders, all in one namespace,
    each sure to hear the others (a first answer went round the whole loop)."""
    ns, wav_dir = fresh_namespace("loop"), tmp_path / "wav"
    topics, spoken = SpeechTopics(ros, ns), Recorder()
    spoken_sub = ros.node.create_subscription(Spoken, f"{ns}/spoken", spoken, DEEP)
    tts = TtsNode(ns, wav_dir, logs_dir)
    try:
        wait_until(lambda: ros.node.count_publishers(f"{ns}/spoken") >= 1
                   and ros.node.count_subscribers(f"{ns}/response_sentence") >= 2, 30,
                   f"the TTS node's topics\n{tts.log()}")
        _, ep = start_bridge(namespace=ns, barge_in=True)
        topics.settle(ep)
        for k in range(20):                  # until the TTS hears the node too: an answer spoken
            ep.utter("check", f"check {k}")
            final = ep.wait_finals(1)[-1]
            try:
                wait_until(lambda: any(s.request_id == final.request_id for s in spoken.snapshot()), 2,
                           "the TTS node's spoken report", spoken.cond)
                break
            except AssertionError:
                ep.finals.clear()
        for recorder in (topics.sentences, topics.texts, topics.events, spoken, ep.finals, ep.partials, ep.texts):
            recorder.clear()
        yield ep, topics, spoken, wav_dir
        assert tts.stop() == 0, tts.log()
    finally:
        tts.stop()
        ros.node.destroy_subscription(spoken_sub)
        topics.destroy()


def wavs_of(wav_dir: Path, request_id: int) -> list[Path]:
    return sorted(wav_dir.glob(f"{request_id}_*.wav"), key=lambda p: int(p.stem.split("_")[1]))


def reports_of(spoken: Recorder, request_id: int) -> list[str]:
    return [s.text for s in spoken.snapshot() if s.request_id == request_id]


def test_speech_to_wavs_to_spoken_then_barge_in_keeps_only_what_was_said(loop, emu):
    ep, topics, spoken, wav_dir = loop
    emu.set_models({"llama3.2": {"reply": STORY, "chunk_delay_ms": 70}})
    ep.say("tell me a story")
    rid = wait_until(lambda: next((p.request_id for p in ep.partials.snapshot()), None), 15, "the story streaming",
                     ep.partials.cond)
    # the TTS said a sentence; the story streams on (slower than espeak-ng writes a WAV, so the TTS
    # is between two sentences now): the user speaks over the robot
    wait_until(lambda: reports_of(spoken, rid), 20, "a sentence of the story spoken", spoken.cond)
    assert not ep.finals.snapshot(), "the story is still streaming"
    emu.set_models({"llama3.2": {"reply": "It is noon."}})
    ep.say("stop, what time is it?")

    story, answer = ep.wait_finals(2, timeout=30)
    assert (story.prompt, story.done_reason) == ("tell me a story", "cancelled")
    assert (answer.prompt, answer.done_reason, answer.text) == ("stop, what time is it?", "stop", "It is noon.")
    published = [s.text for s in topics.of(rid)]
    assert 1 <= len(published) < STORY_SENTENCES, "sentences remained when the user spoke"
    assert STORY.startswith(" ".join(published))
    # the TTS speaks the next answer after the story's last words: then all of the story's reports are in
    wait_until(lambda: reports_of(spoken, answer.request_id) == ["It is noon."], 20, "the answer spoken", spoken.cond)

    reports = reports_of(spoken, rid)
    said = reports[-1]
    assert all(later.startswith(earlier) for earlier, later in zip(reports, reports[1:])), "cumulative reports"
    files = wavs_of(wav_dir, rid)
    assert [p.name for p in files] == [f"{rid}_{i}.wav" for i in range(len(files))]
    assert said == " ".join(published[:len(files)]), "one WAV file per sentence said, and only those"
    for path in files + wavs_of(wav_dir, answer.request_id):
        with wave.open(str(path)) as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050), path
            assert w.getnframes() > 0.3 * 22050, f"{path.name}: {w.getnframes()} frames"
    # the history holds the story exactly as far as it was spoken
    bodies = [b for b in emu.chat_bodies() if b["messages"] and b["messages"][-1]["content"] == answer.prompt]
    assert messages(bodies[-1]) == [SYSTEM, user("tell me a story"), assistant(said), user("stop, what time is it?")]
    story_log = next(r for r in emu.requests() if messages(r["body"])[-1:] == [user("tell me a story")])
    assert story_log["outcome"]["result"] == "canceled", "closing the stream stopped the generation"
