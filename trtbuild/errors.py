"""The one error tree of trtbuild, and the exit code each branch maps to.

    TrtbuildError                     (exit 1: a bug unless a subclass says otherwise)
    ├── UsageError                    (exit 2: bad command line, unknown GPU name, missing file)
    ├── RecipeError                   (exit 3: the recipe is invalid; carries every diagnostic)
    ├── PlanError                     (exit 3: valid recipe, infeasible or unsupported plan)
    │   └── UnsupportedArchitecture
    ├── StageError                    (exit 4: a build stage failed; names the stage)
    │   ├── CheckpointError
    │   ├── EngineError
    │   │   └── ToolchainError        (TensorRT-LLM absent, wrong version, wrong GPU)
    │   └── RepositoryError           (rendering or lint of the Triton repository failed)
    └── PublishError                  (exit 5: registry push/pull failed or refused)

Only ``trtbuild.cli`` turns these into exit codes; nothing else calls ``sys.exit``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class SourcePosition:
    """A 1-based line and column in a file."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a recipe or plan, in compiler form."""

    message: str
    path: str = ""
    position: SourcePosition | None = None
    rule: str = ""
    severity: str = "error"  # "error" | "warning" | "info"

    def format(self) -> str:
        where = f"{self.position}: " if self.position else ""
        path = f"{self.path}: " if self.path else ""
        rule = f" [{self.rule}]" if self.rule else ""
        sev = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}{sev}{path}{self.message}{rule}"

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.position is None:
            return ("", 0, 0, self.path)
        return (self.position.file, self.position.line, self.position.col, self.path)


class TrtbuildError(Exception):
    """Base of every error trtbuild raises on purpose."""

    exit_code = 1


class UsageError(TrtbuildError):
    """The command line is wrong: unknown option value, missing file, unknown GPU."""

    exit_code = 2


class RecipeError(TrtbuildError):
    """The recipe file is invalid. Holds every diagnostic, sorted by position."""

    exit_code = 3

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class PlanError(TrtbuildError):
    """The recipe is valid but cannot be planned for the target (infeasible, unsupported)."""

    exit_code = 3

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        self.diagnostics = list(diagnostics or [])
        super().__init__(message)


class UnsupportedArchitecture(PlanError):
    """The model's HF architecture has no TensorRT-LLM engine path in our catalog."""


@dataclass
class StageFailure:
    """Context carried by a StageError: what ran and what it printed last."""

    stage: str
    command: list[str] = field(default_factory=list)
    log_tail: str = ""


class StageError(TrtbuildError):
    """A build stage failed. The message names the stage and, where there is one, the command."""

    exit_code = 4

    def __init__(self, stage: str, message: str, *, command: list[str] | None = None, log_tail: str = ""):
        self.failure = StageFailure(stage=stage, command=list(command or []), log_tail=log_tail)
        text = f"{stage}: {message}"
        if command:
            text += "\n  command: " + " ".join(command)
        if log_tail:
            text += "\n  last output:\n" + "\n".join("    " + line for line in log_tail.rstrip().splitlines())
        super().__init__(text)


class CheckpointError(StageError):
    def __init__(self, message: str, **kw: object):
        super().__init__("checkpoint", message, **kw)  # type: ignore[arg-type]


class EngineError(StageError):
    def __init__(self, message: str, **kw: object):
        super().__init__("engine", message, **kw)  # type: ignore[arg-type]


class ToolchainError(EngineError):
    """TensorRT-LLM is missing, out of the supported range, or the GPU does not match the target."""


class RepositoryError(StageError):
    def __init__(self, message: str, **kw: object):
        super().__init__("repository", message, **kw)  # type: ignore[arg-type]


class PublishError(TrtbuildError):
    """Publishing to or pulling from an OCI registry failed or was refused."""

    exit_code = 5
