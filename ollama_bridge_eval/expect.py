"""Expectations on the answers (``--expect FILE.yaml``) and their pass/fail score.

The file names utterances by index (from 0, as in the report), by prompt (every utterance with
exactly that text), or ``"*"`` (every utterance), each with regexes (Python ``re.search``) the
answer must (``match``) and must not (``not_match``) contain; one regex or a list::

    0:
      match: "turn 1"
    "what is my name?":
      match: ["(?i)ada"]
      not_match: ["(?i)don't know"]
    "*":
      not_match: "(?i)as an ai"

A list of items with an ``index`` or ``prompt`` key is accepted too. Every regex is one check;
an utterance that got no good answer (error, timeout, ...) fails all of its checks, and an entry
that names no utterance of the bag is one failed check.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import EvalError

KINDS = ("match", "not_match")


@dataclass
class Expectation:
    """The regexes for one selector (an index, a prompt, or every utterance)."""
    selector: int | str          # index, prompt, or "*"
    checks: list[tuple[str, re.Pattern]]    # (kind, regex)

    def applies_to(self, row: dict) -> bool:
        if self.selector == "*":
            return True
        return row["index"] == self.selector if isinstance(self.selector, int) else row["prompt"] == self.selector

    def describe(self) -> str:
        return "every utterance" if self.selector == "*" else (
            f"#{self.selector}" if isinstance(self.selector, int) else repr(self.selector))


def _compile(where: str, spec) -> list[tuple[str, re.Pattern]]:
    if not isinstance(spec, dict) or not spec or set(spec) - set(KINDS):
        raise EvalError(f"expectation {where} must be a mapping with 'match' and/or 'not_match' "
                        f"(got {spec!r:.80})")
    checks = []
    for kind in KINDS:
        patterns = spec.get(kind, [])
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            if not isinstance(pattern, str):
                raise EvalError(f"expectation {where}: {kind} must be a regex or a list of regexes")
            try:
                checks.append((kind, re.compile(pattern)))
            except re.error as err:
                raise EvalError(f"expectation {where}: bad regex {pattern!r}: {err}") from None
    return checks


def _selector(key) -> int | str:
    if isinstance(key, bool) or not isinstance(key, (int, str)):
        raise EvalError(f"expectation key {key!r} must be an utterance index, a prompt or '*'")
    return key


def parse(data) -> list[Expectation]:
    """Expectations from the loaded YAML (mapping form or list form)."""
    if isinstance(data, dict) and set(data) == {"expectations"}:
        data = data["expectations"]
    if isinstance(data, dict):
        return [Expectation(_selector(k), _compile(repr(k), v)) for k, v in data.items()]
    if isinstance(data, list):
        out = []
        for n, item in enumerate(data):
            keys = [k for k in ("index", "prompt") if isinstance(item, dict) and k in item]
            if len(keys) != 1:
                raise EvalError(f"expectation item {n} needs exactly one of 'index' or 'prompt'")
            spec = {k: v for k, v in item.items() if k != keys[0]}
            out.append(Expectation(_selector(item[keys[0]]), _compile(f"item {n}", spec)))
        return out
    raise EvalError("the expect file must hold a mapping (index/prompt -> match/not_match) or a list")


def load(path: str | Path) -> list[Expectation]:
    """Reads and checks an expect file; EvalError (exit 2) when it is missing or malformed."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise EvalError(f"cannot read expect file {str(path)!r}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise EvalError(f"expect file {str(path)!r} is not valid YAML: {' '.join(str(err).split())}") from None
    return parse(data)


def score(report: dict, expectations: list[Expectation]) -> dict:
    """Checks every answer, stores each row's verdict under ``row["expect"]`` and the overall
    score under ``report["expect"]``; returns the latter."""
    total = passed = 0
    failures = []
    for exp in expectations:
        rows = [r for r in report["utterances"] if exp.applies_to(r)]
        if not rows:
            total += 1
            failures.append(f"{exp.describe()}: no such utterance in the bag")
        for r in rows:
            verdict = r.setdefault("expect", {"passed": True, "checks": []})
            for kind, regex in exp.checks:
                answer = r["answer"] if r["status"] == "ok" else None
                found = answer is not None and regex.search(answer) is not None
                ok = answer is not None and found == (kind == "match")
                total += 1
                passed += ok
                verdict["checks"].append({"kind": kind, "pattern": regex.pattern, "passed": ok})
                if not ok:
                    verdict["passed"] = False
                    why = (f"no good answer ({r['status']})" if answer is None
                           else f"answer {'does not match' if kind == 'match' else 'matches'} /{regex.pattern}/")
                    failures.append(f"#{r['index']} {r['prompt']!r}: {why}")
    report["expect"] = {"total": total, "passed": passed, "failed": total - passed, "failures": failures}
    return report["expect"]
