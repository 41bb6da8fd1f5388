"""Turn measurements into the markdown comparison table and the JSON record."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workloads import Check, Measurement, Note

MIB = 1024 * 1024
SUBJECT = "labtrack"  # Ratios are "how many times better is labtrack than X".


@dataclass
class ServerResult:
    """Everything measured about one server on one backend."""

    server: str
    version: str = "?"
    startup_s: float | None = None
    idle_rss_mib: float | None = None
    peak_rss_mib: float | None = None
    idle_pss_mib: float | None = None
    peak_pss_mib: float | None = None
    idle_processes: int | None = None
    measurements: list[Measurement] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    # Numbers left out on purpose (W7 on a server too slow to seed): listed, not failures.
    notes: list[Note] = field(default_factory=list)
    # Per workload: wall seconds and CPU seconds spent by the server tree and by the client.
    workload_usage: dict[str, dict[str, float]] = field(default_factory=dict)

    def failed(self, workload: str) -> bool:
        return workload in self.errors or any(
            not c.ok for c in self.checks if c.workload == workload
        )


# ---------------------------------------------------------------------------- machine facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _git_commit(repo: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or "(no commit)"


def machine_facts(repo: Path, versions: dict[str, str]) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(_mem_total_gib(), 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": _git_commit(repo),
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
    }


# ---------------------------------------------------------------------------- table


def fmt_value(value: float | None) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(subject: float | None, other: float | None, higher_is_better: bool) -> str:
    """'23.4x' means the subject is 23.4 times better, whichever direction is better."""
    if not subject or not other or subject != subject or other != other:
        return "—"
    r = subject / other if higher_is_better else other / subject
    return f"{r:.1f}x" if r >= 1.95 else f"{r:.2f}x"


@dataclass(frozen=True)
class Row:
    workload: str
    name: str
    unit: str
    higher_is_better: bool
    compared: bool = True


def _rows(results: list[ServerResult]) -> list[Row]:
    """All measured rows, in first-seen order, then the process facts."""
    seen: dict[tuple[str, str], Row] = {}
    for res in results:
        for m in res.measurements:
            seen.setdefault(
                (m.workload, m.name),
                Row(m.workload, m.name, m.unit, m.higher_is_better, m.compared),
            )
    rows = sorted(seen.values(), key=lambda r: r.workload)  # Stable: keeps order within a workload.
    return rows + [Row("server", name, unit, False) for name, (unit, _) in SERVER_ROWS.items()]


SERVER_ROWS: dict[str, tuple[str, str]] = {
    "start-up time": ("s", "startup_s"),
    "idle RSS, process tree": ("MiB", "idle_rss_mib"),
    "peak RSS, process tree": ("MiB", "peak_rss_mib"),
    "idle PSS, process tree": ("MiB", "idle_pss_mib"),
    "peak PSS, process tree": ("MiB", "peak_pss_mib"),
}


def _value(res: ServerResult, row: Row) -> float | None:
    if row.workload == "server":
        return getattr(res, SERVER_ROWS[row.name][1])
    for m in res.measurements:
        if m.workload == row.workload and m.name == row.name:
            return m.value
    return None


def _cell(res: ServerResult, row: Row) -> str:
    value = _value(res, row)
    if value is None and row.workload in res.errors:
        return "error"
    text = fmt_value(value)
    return text + " ✗" if row.workload != "server" and res.failed(row.workload) else text


def markdown_table(backend: str, results: list[ServerResult]) -> str:
    """workload | <server>... | labtrack vs <other>... ; one line per measurement."""
    names = [r.server for r in results]
    subject = next((r for r in results if r.server == SUBJECT), None)
    others = [r for r in results if r.server != SUBJECT] if subject else []
    header = ["workload", *names] + [f"{SUBJECT} vs {o.server}" for o in others]
    lines = [
        "",
        f"### backend: {backend}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for row in _rows(results):
        arrow = "↑" if row.higher_is_better else "↓"
        label = f"{row.workload} {row.name} ({row.unit} {arrow})"
        cells = [_cell(r, row) for r in results]
        ratios = [
            ratio(_value(subject, row), _value(o, row), row.higher_is_better)
            if row.compared
            and subject
            and not subject.failed(row.workload)
            and not o.failed(row.workload)
            else "—"
            for o in others
        ]
        lines.append("| " + " | ".join([label, *cells, *ratios]) + " |")
    return "\n".join(lines) + "\n" + _problems(results)


def _problems(results: list[ServerResult]) -> str:
    """List failed checks, crashed workloads and skipped numbers under the table, so every ✗
    and every missing number is explained. Notes (–) are not failures."""
    out = []
    for res in results:
        for wl, err in res.errors.items():
            out.append(f"- ✗ {res.server} {wl}: {err}")
        for c in res.checks:
            if not c.ok:
                out.append(f"- ✗ {res.server} {c.workload}: {c.what} ({c.detail})")
        for n in res.notes:
            out.append(f"- – {res.server} {n.workload}: {n.text}")
    return ("\n**Problems:**\n\n" + "\n".join(out) + "\n") if out else ""


def facts_markdown(facts: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in facts["versions"].items())
    return "\n".join(
        [
            f"- date: {facts['date']}",
            f"- machine: {facts['nproc']} CPUs ({facts['cpu']}), {facts['memory_gib']} GiB, "
            f"Linux {facts['kernel']}",
            f"- python (harness): {facts['python']}; versions: {versions}",
            f"- labtrack commit: {facts['git_commit']}",
            f"- command: `{facts['command']}`",
            "- ↑ higher is better, ↓ lower is better; a ratio > 1 means labtrack is better.",
            "",
        ]
    )


def write_json(
    path: Path, facts: dict[str, Any], by_backend: dict[str, list[ServerResult]]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "facts": facts,
        "backends": {b: [asdict(r) for r in results] for b, results in by_backend.items()},
    }
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
