"""The rows of ``bench/report.md``'s targets table and the number formats every part of the report
shares. A phase adds its targets as a function ``results -> list[Row]`` in
``bench_report.TARGETS``."""
from __future__ import annotations

import math
from typing import NamedTuple

MB = 1024.0   # kB per MB (MiB, as /proc reports kB = KiB)


class Row(NamedTuple):
    """One target: what is compared, the measured value, the goal, whether it is met, and by how
    much it is missed ("" when met)."""
    target: str
    measured: str
    goal: str
    met: bool
    short: str = ""


def fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def ratio(a: float, b: float) -> float:
    return float("inf") if b <= 0 else a / b


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def table(rows: list[tuple]) -> list[str]:
    """The targets table (``Row``s, or plain 5-tuples in the same order)."""
    out = ["| target | measured | goal | verdict | by how much |", "| --- | --- | --- | --- | --- |"]
    return out + [f"| {t} | {m} | {g} | {verdict(ok)} | {d} |" for t, m, g, ok, d in rows]
