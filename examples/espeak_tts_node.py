"""A reference text-to-speech node for ollama_bridge, using Debian's `espeak-ng`.

It speaks every sentence the bridge publishes on `response_sentence` (in order, one at a time) and,
after each sentence, publishes on `spoken` everything it has said of that request so far. When the
bridge cancels a request (barge-in, the `cancel` service, a reset) its unspoken sentences are
dropped and the sentence being spoken is cut off (its WAV file, if any, deleted), so the history
keeps only what was said.

    python examples/espeak_tts_node.py --ros-args -r __ns:=/robot1          # speak aloud
    python examples/espeak_tts_node.py --wav-dir /tmp/tts --ros-args -r __ns:=/robot1      # no audio device

Topics (relative, so namespaces and remaps apply):
  in   response_sentence  ollama_bridge_msgs/msg/Sentence
  in   response_final     ollama_bridge_msgs/msg/Response  (a cancelled request stops being spoken)
  out  spoken             ollama_bridge_msgs/msg/Spoken    (session_id, request_id, text spoken so far)

With `--wav-dir DIR` each sentence is written to `DIR/<request_id>_<index>.wav` (`espeak-ng -w`)
instead of being played. `--voice` and `--speed` (words per minute) are passed to espeak-ng.
"""
from __future__ import annotations

import argparse
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from ollama_bridge_msgs.msg import Response, Sentence, Spoken

DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


class EspeakTts(Node):
    """Speaks sentences in arrival order on a worker thread; reports each one on `spoken`."""

    def __init__(self, wav_dir: Path | None, voice: str, speed: int):
        super().__init__("espeak_tts")
        self.wav_dir, self.voice, self.speed = wav_dir, voice, speed
        self.spoken_pub = self.create_publisher(Spoken, "spoken", DEEP)
        self.create_subscription(Sentence, "response_sentence", self.on_sentence, DEEP)
        self.create_subscription(Response, "response_final", self.on_final, DEEP)
        self.todo: queue.Queue[Sentence | None] = queue.Queue()
        self.lock = threading.Lock()
        self.cancelled: set[int] = set()          # request ids not to speak any more
        self.said: dict[int, list[str]] = {}      # request id -> sentences spoken so far
        self.current: subprocess.Popen | None = None
        self.current_request = 0
        self.worker = threading.Thread(target=self.speak_loop, daemon=True)
        self.worker.start()

    def on_sentence(self, sentence: Sentence):
        self.todo.put(sentence)

    def on_final(self, response: Response):
        if response.done_reason != "cancelled":
            return
        with self.lock:
            self.cancelled.add(response.request_id)
            if self.current is not None and self.current_request == response.request_id:
                self.current.kill()   # cut off mid-sentence: that sentence does not count as spoken

    def speak_loop(self):
        while (sentence := self.todo.get()) is not None:
            with self.lock:
                if sentence.request_id in self.cancelled:
                    continue
                cmd = ["espeak-ng", "-v", self.voice, "-s", str(self.speed)]
                wav = None if self.wav_dir is None else self.wav_dir / f"{sentence.request_id}_{sentence.index}.wav"
                if wav is not None:
                    cmd += ["-w", str(wav)]
                self.current = subprocess.Popen(cmd + ["--", sentence.text], stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE)
                self.current_request = sentence.request_id
            proc = self.current
            _, err = proc.communicate()
            with self.lock:
                self.current = None
                if sentence.request_id in self.cancelled:
                    if wav is not None:      # cut off: the folder keeps only what was said
                        wav.unlink(missing_ok=True)
                    continue
            if proc.returncode != 0:
                self.get_logger().error(f"espeak-ng failed ({proc.returncode}): {err.decode(errors='replace').strip()}")
                continue
            said = self.said.setdefault(sentence.request_id, [])
            said.append(sentence.text.strip())
            self.spoken_pub.publish(Spoken(session_id=sentence.session_id, request_id=sentence.request_id,
                                           text=" ".join(said)))

    def stop(self):
        self.todo.put(None)
        with self.lock:
            if self.current is not None:
                self.current.kill()
        self.worker.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    ros_args = rclpy.utilities.remove_ros_args(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav-dir", type=Path, help="write WAV files here instead of playing audio")
    parser.add_argument("--voice", default="en-us")
    parser.add_argument("--speed", type=int, default=175, help="words per minute")
    args = parser.parse_args(ros_args[1:])
    if shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed (Debian/Ubuntu: apt install espeak-ng)", file=sys.stderr)
        return 2
    if args.wav_dir is not None:
        args.wav_dir.mkdir(parents=True, exist_ok=True)
    rclpy.init(args=argv)
    node = EspeakTts(args.wav_dir, args.voice, args.speed)
    where = f"writing WAV files to {args.wav_dir}" if args.wav_dir is not None else "speaking aloud"
    node.get_logger().info(f"espeak-ng TTS ready ({where}, voice {args.voice}, {args.speed} words/min)")
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
