"""The tool's own conversation sessions.

A replay must not continue, reset or save into a conversation that is not its own (the robot's
live ``default`` session, other users' sessions, their history files). So each session of the bag
(``default`` for ``std_msgs/String`` bags) is played into a session of the tool's own,
``<prefix><bag session>`` (prefix ``eval/`` unless ``--session-prefix`` says otherwise), through
the bridge's ``utterance`` input; before playing, exactly those sessions are reset (which also
deletes their history files when the bridge has ``history_dir``).

Only a bridge without an ``utterance`` input (or ``--input speech_text``: to replay through the
speech topic itself) is played through its speech input, where every input belongs to the bridge's
``default`` session: then the replay shares that conversation (with a live speech recogniser, if
one runs) and resets it only when ``--reset`` is given explicitly.
"""
from __future__ import annotations

import hashlib

from . import EvalError
from .msgtypes import DEFAULT_SESSION

DEFAULT_PREFIX = "eval/"
#: the bridge refuses longer session ids (src/bridge.rs, MAX_SESSION_ID_CHARS)
MAX_SESSION_ID_CHARS = 128


class Sessions:
    """Maps the bag's sessions to the sessions the bridge sees."""

    def __init__(self, prefix: str = DEFAULT_PREFIX, shared: bool = False):
        """``shared``: the input is the speech topic, every input goes to ``default``."""
        if not shared and not prefix:
            raise EvalError("--session-prefix must not be empty (the replay would use other conversations)")
        if not prefix.isprintable() or len(prefix) > MAX_SESSION_ID_CHARS // 2:
            raise EvalError(f"--session-prefix {prefix!r}: at most {MAX_SESSION_ID_CHARS // 2} printable characters")
        self.prefix, self.shared = prefix, shared

    def own(self, bag_session: str) -> str:
        """The bridge session of ``bag_session`` (a digest when prefix + name is too long)."""
        if self.shared:
            return DEFAULT_SESSION
        name = self.prefix + bag_session
        if len(name) > MAX_SESSION_ID_CHARS or not name.isprintable():
            name = self.prefix + hashlib.sha256(bag_session.encode()).hexdigest()[:32]
        return name

    def all_of(self, bag_sessions) -> list[str]:
        """The distinct bridge sessions of ``bag_sessions``, in first-seen order."""
        return list(dict.fromkeys(self.own(s) for s in bag_sessions))
