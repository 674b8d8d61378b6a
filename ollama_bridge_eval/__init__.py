"""Rosbag replay evaluation of the ollama_bridge node.

Plays the utterances of one topic of a recorded bag into a running bridge, records what the
bridge published into an output bag and writes a report (JSON, Markdown, latency chart)::

    scripts/eval BAG --topic /asr/text [--namespace /robot1] [--mode turn|realtime] ...
    scripts/eval --compare REPORT_A.json REPORT_B.json
    scripts/eval --record OUT --topic /asr/text

Modules, one concern each:

* ``msgtypes``  the rosbags typestore with the ollama_bridge_msgs types, names of the topics
* ``bag_input`` read the utterances of one topic of a bag (directory, .mcap or .db3), from its storage files
* ``graph``     where the running bridge listens and publishes (node, namespace, remaps), from the ROS graph
* ``sessions``  the replay's own conversation sessions (``eval/<bag session>``)
* ``bridge``    the rclpy side: publishers, recording subscriptions, services, parameters
* ``player``    turn-by-turn and realtime playback, pairing inputs with final responses
* ``recorder``  what the bridge published, with receive times, written as an mcap bag
* ``record``    ``--record``: one topic into an mcap bag, where ``ros2 bag`` is not installed
* ``report``    per-utterance rows and summary statistics, as report.json and report.md
* ``chart``     latency.png, drawn with matplotlib
* ``expect``    YAML expectations (regexes an answer must / must not match) and their score
* ``compare``   side-by-side Markdown of two report.json files
* ``cli``       the command line
"""

__version__ = "0.1.0"


class EvalError(Exception):
    """Bad input or an absent bridge: reported as one line on stderr, exit code 2."""
