"""The GPU check's record: one Step per thing checked, pytest results read from JUnit XML, and the report
written as JSON and markdown (atomically, so a killed run never leaves half a report).

A step is ``passed``, ``failed`` or ``skipped`` (with the reason). A pytest run in which no test passed
counts as failed: a check that checked nothing must not read as green.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trtbuild import __version__
from trtbuild.fsutil import write_atomic

from .environment import Environment

Status = Literal["passed", "failed", "skipped"]
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


class TestCase(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    outcome: Literal["passed", "failed", "error", "skipped"]
    message: str = ""


class PytestResult(BaseModel):
    """What one pytest run did, from its ``--junitxml`` file."""

    model_config = ConfigDict(frozen=True)

    exit_status: int
    cases: tuple[TestCase, ...] = ()

    def count(self, outcome: str) -> int:
        return sum(1 for c in self.cases if c.outcome == outcome)

    @property
    def summary(self) -> str:
        parts = [f"{self.count(o)} {o}" for o in ("passed", "failed", "error", "skipped") if self.count(o)]
        return ", ".join(parts) or "no tests collected"

    @property
    def status(self) -> Status:
        if self.count("failed") or self.count("error") or self.count("passed") == 0:
            return "failed"
        # pytest's own exit status catches what JUnit does not show (collection errors, internal errors)
        return "passed" if self.exit_status == 0 else "failed"


def read_junit(path: Path, exit_status: int) -> PytestResult:
    """Parse pytest's JUnit XML; a missing or unreadable file gives a result with no cases (counts as failed)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return PytestResult(exit_status=exit_status)
    cases = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        outcome: Literal["passed", "failed", "error", "skipped"] = "passed"
        message = ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "failed" if tag == "failure" else tag  # type: ignore[assignment]
                message = (node.get("message") or node.text or "").strip()
                break
        cases.append(TestCase(name=name, outcome=outcome, message=message[:2000]))
    return PytestResult(exit_status=exit_status, cases=tuple(cases))


class Step(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    backend: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    log: str | None = None
    pytest: PytestResult | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class Report(BaseModel):
    model_config = ConfigDict(frozen=True)

    trtbuild_version: str = __version__
    started: str
    finished: str
    gpu: str | None
    model: str
    backends: tuple[str, ...]
    environment: Environment
    steps: tuple[Step, ...] = ()
    message: str = ""

    @property
    def ok(self) -> bool:
        env_ok = not any(self.environment.missing_for(b) for b in self.backends)
        return env_ok and bool(self.steps) and all(s.status != "failed" for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["ok"] = self.ok
        data["versions"] = self.environment.versions()
        data["missing"] = [c.model_dump() for c in self.environment.checks if not c.ok]
        return data


def render_markdown(report: Report) -> str:
    env = report.environment
    lines = [f"# trtbuild GPU check: {'PASSED' if report.ok else 'FAILED'}", "",
             f"trtbuild {report.trtbuild_version}; {report.started} → {report.finished}; model {report.model}; "
             f"GPU target {report.gpu or '(none)'}; backends {', '.join(report.backends)}", ""]
    if report.message:
        lines += [report.message, ""]
    lines += ["## Environment", "", "| requirement | needed by | status | found / what to do |", "|---|---|---|---|"]
    for c in env.checks:
        lines.append(f"| {c.label} | {', '.join(c.needed_by)} | {'ok' if c.ok else 'MISSING'} | "
                     f"{_cell(c.found if c.ok else c.missing)} |")
    lines += ["", "## Steps", "", "| backend | step | status | time | detail |", "|---|---|---|---|---|"]
    for s in report.steps:
        detail = s.detail + (f" ({s.pytest.summary})" if s.pytest else "")
        lines.append(f"| {s.backend} | {s.name} | {s.status.upper()} | {s.seconds:.1f}s | {_cell(detail)} |")
    notes: dict[tuple[str, str, str], list[str]] = {}
    for s in report.steps:
        for case in s.pytest.cases if s.pytest else ():
            if case.outcome != "passed":
                key = (f"{s.backend} / {s.name}", case.outcome, _cell(case.message[:300]))
                notes.setdefault(key, []).append(case.name)
    if notes:
        lines += ["", "## Tests not passed", ""]
        for (where, outcome, message), names in notes.items():
            shown = ", ".join(f"`{n}`" for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(f"* **{outcome}** {shown} ({where}): {message}")
    deselected = [(s, test, why) for s in report.steps for test, why in (s.data.get("deselected") or {}).items()]
    if deselected:
        lines += ["", "## Tests not run", ""]
        lines += [f"* `{test}` ({s.backend} / {s.name}): {why}" for s, test, why in deselected]
    logs = [s for s in report.steps if s.log]
    if logs:
        lines += ["", "## Logs", ""] + [f"* {s.backend} / {s.name}: `{s.log}`" for s in logs]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def write_report(report: Report, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / REPORT_JSON, out_dir / REPORT_MD
    write_atomic(json_path, json.dumps(report.to_json(), indent=2) + "\n")
    write_atomic(md_path, render_markdown(report))
    return json_path, md_path
