"""The repo config `.github/fix-and-relaunch.yml`: one pydantic model, parsed, validated, defaults filled in.

`RepoConfig` is the one definition of the file: `parse` and `load` validate against it and
report every problem at once (a `ConfigError`, which is a BadInput naming the file, the line
and the key path, with a "did you mean" for an unknown key), `check-config` prints them, and
`docs/fix-and-relaunch.schema.json` is its JSON Schema, for editors (`check-config --schema`
writes it; a test keeps the two equal). Every key is optional; nothing runs on a guess.

To add a key, add a field with its default and a description to its section's model below
(a new section is a new `Section` subclass and a field of `RepoConfig`), then regenerate the
schema.

Organisation defaults (Probot's `_extends` convention): `_extends: .github` (the owner's `.github`
repository), `_extends: repo`, `_extends: owner/repo` or `owner/repo:path/to/file.yml` names a
file (default this same path) whose keys the repository's own file overrides, mapping by mapping
(a list or a value is replaced whole). The server fetches it through the App (`extends_of` says
which); `parse`/`check` take its text as `base`, validate it on its own (its problems name it) and
then the merge, with the same model. The base's own `_extends` is not followed.

Callers get the config as plain dicts (`config["launch"]["backend"]`); backend options
(`launch.slurm`, `launch.ray`, `launch.wandb`) hold only the keys the file sets, as each
launcher expects.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.core.errors import BadInput
from bot.launchers.sandbox.policy import SandboxSpec
from bot.launchers.slurm import SAFE_VALUE
from bot.repo.config_problems import ConfigError, ConfigProblem, Document, problems_from, read_yaml

__all__ = [
    "ALWAYS_DENIED",
    "BACKENDS",
    "CONFIG_PATH",
    "DEFAULTS",
    "ConfigError",
    "ConfigProblem",
    "Extends",
    "RepoConfig",
    "check",
    "extends_of",
    "json_schema",
    "load",
    "parse",
]

CONFIG_PATH = ".github/fix-and-relaunch.yml"
# Never edited by a fix, whatever the repo config says: CI, git's own files, the bot's config.
ALWAYS_DENIED = (".github/**", ".git/**", ".gitmodules", ".gitattributes")
MAX_CONFIG_CHARS = 256 * 1024  # a real config is a few hundred bytes; this bounds parse time and memory
BACKENDS = ("local", "command", "slurm", "ray", "wandb-launch")
EXTENDS_KEY = "_extends"
# `.github`, `repo`, `owner/repo`, `owner/repo:path/file.yml` (GitHub's owner and repository names).
EXTENDS_PATTERN = r"^(?:([A-Za-z0-9-]{1,39})/)?([A-Za-z0-9._-]{1,100})(?::([^\s:]{1,255}))?$"
Backend = Literal["local", "command", "slurm", "ray", "wandb-launch"]


def _whole(value: float) -> float:
    # YAML `timeout: 60` stays the integer 60 (strict mode reads it as 60.0).
    return int(value) if isinstance(value, float) and value.is_integer() else value


Count = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False), AfterValidator(_whole)]
Number = Annotated[float, Field(ge=0, allow_inf_nan=False), AfterValidator(_whole)]
Glob = Annotated[str, Field(min_length=1)]
SBATCH_WORD = f"^{SAFE_VALUE.pattern}$"
SBATCH_OPTION = r"^\s*(#SBATCH\s+)?-[^\n\r\x00]*$"
SbatchWord = Annotated[str, Field(pattern=SBATCH_WORD)]
SbatchOption = Annotated[str, Field(pattern=SBATCH_OPTION)]
# What each pattern asks for, in words, for the problems `check-config` reports.
PATTERN_TEXT = {
    SBATCH_WORD: "one word of letters, digits and .:,=+/@%*-_ (no spaces)",
    SBATCH_OPTION: "one sbatch option starting with '-', on one line",
}


class Section(BaseModel):
    """A mapping of the file: strict types (a `true` is not a number, `"3"` is not an
    integer), no unknown keys, and an empty section (`launch:`) meaning its defaults."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_default=False)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        sections = {name for name, f in cls.model_fields.items() if _is_section(f.annotation)}
        return {k: ({} if v is None and k in sections else v) for k, v in data.items()}


class BackendOptions(Section):
    """A backend's options: passed to its launcher as the file sets them, defaults unfilled."""


class SlurmOptions(BackendOptions):
    partition: SbatchWord | None = Field(None, description="sbatch --partition")
    time: Count | SbatchWord | None = Field(None, description="sbatch --time, e.g. 4:00:00 or minutes")
    gres: SbatchWord | None = Field(None, description="sbatch --gres, e.g. gpu:1")
    cpus: Count | None = Field(None, description="sbatch --cpus-per-task")
    mem: Count | SbatchWord | None = Field(None, description="sbatch --mem, e.g. 32G")
    qos: SbatchWord | None = Field(None, description="sbatch --qos")
    account: SbatchWord | None = Field(None, description="sbatch --account")
    requeue: bool = Field(False, description="let Slurm requeue a preempted job (--requeue)")
    extra: list[SbatchOption] = Field([], description="more sbatch options, one per entry, e.g. --exclusive")


class RayOptions(BackendOptions):
    address: str | None = Field(None, description="the Ray job server, e.g. http://ray-head:8265")
    num_cpus: Number | None = Field(None, description="CPUs reserved for the job's entrypoint")
    num_gpus: Number | None = Field(None, description="GPUs reserved for the job's entrypoint")
    runtime_env: dict[str, Any] = Field({}, description="more of Ray's runtime_env (env_vars, pip, …)")


class WandbLaunchOptions(BackendOptions):
    queue: str | None = Field(None, description="the W&B Launch queue (default: default)")
    entity: str | None = Field(None, description="the queue's entity (default: wandb.entity)")
    project: str | None = Field(None, description="the run's project (default: wandb.project)")
    project_queue: str | None = Field(None, description="the project holding the queue (default: model-registry)")
    job: str | None = Field(None, description="the W&B job artifact to run, e.g. team/project/train:latest")
    docker_image: str | None = Field(None, description="a docker image to run instead of a job")
    resource_args: dict[str, Any] | None = Field(None, description="resource arguments for the queue's agent")


def _sandbox(value: str | bool | dict[str, Any]) -> str | bool | dict[str, Any]:
    try:
        SandboxSpec.parse(value, "launch.sandbox")
    except BadInput as exc:  # it names the part that is wrong
        raise ValueError(str(exc)) from None
    return value


class Launch(Section):
    backend: Backend = Field("local", description="where a run goes")
    setup: str | None = Field(None, description="run first, in the worktree, e.g. pip install -r requirements.txt")
    install: bool = Field(
        True, description="local backend without setup: install what the repo declares first (bot/launchers/jobenv.py)"
    )
    command: str = Field("python main.py", description="what a run executes")
    slurm: SlurmOptions = Field(default_factory=SlurmOptions, description="backend slurm's options")
    ray: RayOptions = Field(default_factory=RayOptions, description="backend ray's options")
    wandb: WandbLaunchOptions = Field(default_factory=WandbLaunchOptions, description="backend wandb-launch's options")
    sandbox: Annotated[str | bool | dict[str, Any], AfterValidator(_sandbox)] = Field(
        "auto",
        description="run the job in the sandbox: auto, on, off, or a mapping (mode, network, limits): see the README",
    )

    @model_validator(mode="after")
    def _wandb_launch_runs_something(self) -> Launch:
        chosen = [k for k in ("job", "docker_image") if getattr(self.wandb, k)]
        if self.backend == "wandb-launch" and len(chosen) != 1:
            raise ValueError(
                "needs exactly one of launch.wandb.job or launch.wandb.docker_image for backend wandb-launch"
            )
        return self


class Verify(Section):
    min_steps: Count = Field(20, description="the relaunched run must log this many steps with a sane loss")
    timeout: Seconds = Field(900, description="seconds to wait for them")
    smoke: str | None = Field(None, description="a command a patch must pass before it is committed")
    smoke_timeout: Seconds = Field(300, description="seconds the smoke command may take")


class Fix(Section):
    max_attempts: Count = Field(3, description="fix → relaunch → verify rounds before giving up")
    allowed_paths: list[Glob] = Field(
        ["**/*.py", "requirements*.txt", "configs/**", "docs/**"], description="what a fix may edit"
    )
    denied_paths: list[Glob] = Field(
        [".github/**"], description="what a fix never edits (always also .github/**, .git/**, .gitmodules)"
    )
    delete_failed_run: bool = Field(False, description="delete the failed runs a relaunch replaced, at the end")
    max_patch_lines: Count = Field(200, description="the largest patch a fix may make")
    rules: bool = Field(True, description="try the built-in rules first; false sends every failure to the LLM")


class Wandb(Section):
    entity: str | None = Field(None, description="the W&B entity (default: WANDB_ENTITY)")
    project: str | None = Field(None, description="the W&B project (default: WANDB_PROJECT)")
    branch_key: str = Field("branch", description="the run config key naming the git branch")


class RepoConfig(Section):
    """`.github/fix-and-relaunch.yml`"""

    model_config = ConfigDict(title="fix-and-relaunch repo config")

    launch: Launch = Field(default_factory=Launch)
    verify: Verify = Field(default_factory=Verify)
    fix: Fix = Field(default_factory=Fix)
    wandb: Wandb = Field(default_factory=Wandb)

    def to_dict(self) -> dict[str, Any]:
        """The config as callers read it, the deny list's floor added."""
        config = _as_dict(self)
        denied = config["fix"]["denied_paths"]
        config["fix"]["denied_paths"] = [*ALWAYS_DENIED, *(p for p in denied if p not in ALWAYS_DENIED)]
        return config


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Section)


def _as_dict(model: Section) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BackendOptions):
            out[name] = value.model_dump(exclude_unset=True)
        elif isinstance(value, Section):
            out[name] = _as_dict(value)
        else:
            out[name] = copy.deepcopy(value)
    return out


DEFAULTS: dict[str, Any] = _as_dict(RepoConfig())


@dataclass(frozen=True)
class Extends:
    """The file a config's `_extends` names: `path` in the repository `repo` (owner/name)."""

    repo: str
    path: str = CONFIG_PATH

    @property
    def source(self) -> str:
        return f"{self.repo}:{self.path}"


@dataclass(frozen=True)
class Base:
    """The text of the file a config extends, and where it came from (for its problems)."""

    text: str
    source: str


def extends_of(text: str, owner: str) -> Extends | None:
    """The file the config's `_extends` names (a bare repository name is `owner`'s); None when it
    names none, or the text is not a config (its problems are `check`'s to report)."""
    try:
        data = read_yaml(text, CONFIG_PATH).data
    except ConfigError:
        return None
    value = data.get(EXTENDS_KEY) if isinstance(data, dict) else None
    match = re.fullmatch(EXTENDS_PATTERN, value) if isinstance(value, str) else None
    if match is None:
        return None
    return Extends(f"{match[1] or owner}/{match[2]}", match[3] or CONFIG_PATH)


def merged(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """`own` over `base`: mappings merged key by key, anything else taken from `own` whole."""
    out = dict(base)
    for key, value in own.items():
        below = out.get(key)
        out[key] = merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return out


def check(text: str, source: str = CONFIG_PATH, base: Base | None = None) -> list[ConfigProblem]:
    """Every problem of the file's text (and of the `base` it extends), in file order; empty when valid."""
    try:
        _validate(text, source, base)
    except ConfigError as err:
        return err.problems
    return []


def parse(text: str, source: str = CONFIG_PATH, base: Base | None = None) -> dict[str, Any]:
    """Parse and validate the YAML text of a repo config, merged over the `base` it extends when
    given; return the full config with defaults. ConfigError (a BadInput) lists every problem."""
    return _validate(text, source, base).to_dict()


def _validate(text: str, source: str, base: Base | None = None) -> RepoConfig:
    document = _mapping(read_yaml(text, source))
    if base is None:
        return _model(document)
    try:
        base_document = _mapping(read_yaml(base.text, base.source))
        base_data = {k: v for k, v in (base_document.data or {}).items() if k != EXTENDS_KEY}
        _model(replace(base_document, data=base_data))
    except ConfigError as broken:  # the base's problems, named by its source, and the file's own
        try:
            _model(document)
        except ConfigError as own:
            raise ConfigError([*broken.problems, *own.problems]) from None
        raise
    return _model(replace(document, data=merged(base_data, document.data or {})))


def _mapping(document: Document) -> Document:
    if document.data is not None and not isinstance(document.data, dict):
        raise ConfigError.one(
            document.source, "", f"the top level must be a mapping of sections, got {type(document.data).__name__}"
        )
    return document


def _model(document: Document) -> RepoConfig:
    """The model of the document's sections; `_extends` (how the file was made, not a setting)
    is checked here and left out."""
    if document.data is None:
        return RepoConfig()
    data = {k: v for k, v in document.data.items() if k != EXTENDS_KEY}
    problems = []
    extends = document.data.get(EXTENDS_KEY)
    if EXTENDS_KEY in document.data and not (isinstance(extends, str) and re.fullmatch(EXTENDS_PATTERN, extends)):
        message = f"must name a repository: .github, repo, owner/repo or owner/repo:path, got {extends!r}"
        problems.append(ConfigProblem(document.source, EXTENDS_KEY, message, document.line_of((EXTENDS_KEY,))))
    try:
        model = RepoConfig.model_validate(data)
    except ValidationError as exc:
        problems += problems_from(exc, document, RepoConfig, PATTERN_TEXT)
    if problems:
        raise ConfigError(problems)
    return model


def load(repo: Path, base: Base | None = None) -> dict[str, Any]:
    """The config of the checkout at `repo` (merged over the `base` it extends, when given);
    defaults when it has none."""
    return parse(read_text(repo), base=base)


def read_text(repo: Path) -> str:
    """The text of the checkout's config file ("" when it has none); a link is refused."""
    path = Path(repo) / CONFIG_PATH
    if not path.exists() and not path.is_symlink():
        return ""
    if path.is_symlink() or not path.resolve().is_relative_to(Path(repo).resolve()):
        raise BadInput(f"{CONFIG_PATH}: must be a file of the repository, not a link")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{CONFIG_PATH}: cannot read: {exc}") from None


def json_schema() -> str:
    """The model's JSON Schema, as shipped in docs/fix-and-relaunch.schema.json."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **RepoConfig.model_json_schema()}
    schema["properties"] = {
        EXTENDS_KEY: {
            "type": "string",
            "pattern": EXTENDS_PATTERN,
            "description": "Inherit this file's keys from another repository's (the organisation's defaults): "
            "`.github`, `repo`, `owner/repo` or `owner/repo:path`; the keys here override it",
        },
        **schema["properties"],
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
