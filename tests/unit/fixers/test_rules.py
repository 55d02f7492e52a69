"""The deterministic rule fixers, each on a small realistic repo in a tmp dir."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from bot.diagnosis import diagnose_lines
from bot.diagnosis.model import Diagnosis
from bot.fixers.distributions import distribution_for
from bot.fixers.model import Edit, FixContext
from bot.fixers.rules import propose_rule_fix
from bot.fixers.rules.hyperparams import divide_by_ten

CONFIG_PY = '''\
"""Training defaults."""

DEFAULTS = {
    "lr": 0.1,  # tuned on the small model
    "batch_size": 256,
    "epochs": 3,
}
'''


def make_repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def traceback_log(root: Path, exc_type: str, message: str, file: str | None, line: int | None) -> list[str]:
    """The log a job prints when `exc_type: message` is raised at `file:line` of the repo (the
    source line and the enclosing function read from the file, as Python prints them)."""
    rel = file or "train.py"
    path = Path(rel) if Path(rel).is_absolute() else root / rel
    source, function = "", "<module>"
    if path.is_file() and line:
        text = path.read_text()
        source = text.split("\n")[line - 1].strip() if line <= text.count("\n") + 1 else ""
        function = _enclosing_function(text, line)
    frame = [f'  File "{path}", line {line or 1}, in {function}'] + ([f"    {source}"] if source else [])
    return ["Traceback (most recent call last):", *frame, *f"{exc_type}: {message}".split("\n")]


def _enclosing_function(text: str, line: int) -> str:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return "<module>"
    functions = [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.lineno <= line <= (n.end_lineno or n.lineno)
    ]
    return max(functions, key=lambda n: n.lineno).name if functions else "<module>"


def ctx_for(
    root: Path,
    category: str,
    exc_type: str = "",
    message: str = "",
    *,
    file: str | None = None,
    line: int | None = None,
    log: list[str] | None = None,
    **kwargs,
) -> FixContext:
    """A fix context whose diagnosis the real classifier made from the job's log: `log`, else
    a traceback raising `exc_type: message` at `file:line`. `category` is what the classifier
    must say. Without a log (a run judged by its loss alone) the diagnosis has no exception."""
    if log is None:
        log = traceback_log(root, exc_type, message, file, line) if exc_type else []
    log = [part for entry in log for part in entry.split("\n")]
    if log:
        diagnosis = diagnose_lines(log, repo_root=root)
        assert diagnosis.category == category, diagnosis.text()
    else:
        diagnosis = Diagnosis(category=category, retryable=False, summary="test")
    kwargs.setdefault("log_tail", log)
    return FixContext(
        worktree=root,
        branch=kwargs.pop("branch", "exp-a"),
        diagnosis=diagnosis,
        config=kwargs.pop("config", {}),
        **kwargs,
    )


def apply(root: Path, edits: list[Edit]) -> None:
    """Apply edits the way the contract says: exact, unique search text; empty search creates or appends."""
    for edit in edits:
        path = root / edit.path
        if edit.search == "" and edit.append:
            path.write_text(path.read_text() + edit.replace)
            continue
        if edit.search == "":
            assert not path.exists()
            path.write_text(edit.replace)
            continue
        text = path.read_text()
        assert text.count(edit.search) == 1, f"search text not unique in {edit.path}: {edit.search!r}"
        path.write_text(text.replace(edit.search, edit.replace))


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


# --- distributions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, dist",
    [
        ("sklearn.utils", "scikit-learn"),
        ("PIL", "Pillow"),
        ("PIL.Image", "Pillow"),
        ("bs4", "beautifulsoup4"),
    ],
)
def test_distribution_from_the_maintained_mapping(module, dist):
    assert distribution_for(module) == dist


@pytest.mark.parametrize(
    "module, dist",
    [
        ("yaml", "PyYAML"),  # installed here: read from the environment's metadata
        ("cv2", "opencv-python"),  # a gap in pipreqs's mapping
        ("einops", "einops"),  # unknown to every mapping: its own name
    ],
)
def test_distribution_lookup(module, dist):
    assert distribution_for(module) == dist


def test_no_distribution_for_a_shared_namespace():
    assert distribution_for("plone.app") is None


def test_no_distribution_for_stdlib_or_private_names():
    assert distribution_for("json.decoder") is None
    assert distribution_for("_secret") is None
    assert distribution_for("_secret", guess=False) is None


# --- rule: add-requirement -----------------------------------------------------------------------


def test_missing_module_is_appended_to_requirements(tmp_path):
    root = make_repo(tmp_path, {"requirements.txt": "torch>=2.0\nnumpy  # arrays\n", "train.py": "import einops\n"})
    proposal = propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'einops'"))

    assert proposal.fixer == "rule:add-requirement"
    assert proposal.description == "add missing dependency einops to requirements.txt"
    assert proposal.edits == [Edit("requirements.txt", "", "einops\n", append=True)]
    apply(root, proposal.edits)
    assert (root / "requirements.txt").read_text() == "torch>=2.0\nnumpy  # arrays\neinops\n"
    assert "ModuleNotFoundError: No module named 'einops'" in proposal.evidence


def test_submodule_maps_to_distribution_and_file_without_final_newline_keeps_it(tmp_path):
    root = make_repo(tmp_path, {"requirements.txt": "torch"})
    proposal = propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'cv2.data'"))

    apply(root, proposal.edits)
    assert (root / "requirements.txt").read_text() == "torch\nopencv-python"


def test_requirements_file_is_created_when_missing(tmp_path):
    root = make_repo(tmp_path, {"main.py": "import einops\n"})
    proposal = propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'einops'"))

    assert proposal.edits == [Edit("requirements.txt", "", "einops\n")]


def test_requirements_file_named_by_the_launch_setup_is_used(tmp_path):
    root = make_repo(tmp_path, {"requirements/train.txt": "torch\n"})
    config = {"launch": {"setup": "pip install -r requirements/train.txt"}}
    proposal = propose_rule_fix(
        ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'einops'", config=config)
    )

    assert proposal.edits[0].path == "requirements/train.txt"


PYPROJECT = """[build-system]
requires = ["setuptools"]

[project]
name = "exp"
dependencies = [
    "torch>=2.1",  # the team's pin
    "numpy"
]

[project.optional-dependencies]
dev = ["pytest"]
"""


def test_a_project_installed_from_pyproject_gets_the_dependency_there_written_like_its_items(tmp_path):
    config = {"launch": {"setup": "pip install -e .", "command": "python train.py"}}
    for files in ({"pyproject.toml": PYPROJECT}, {"pyproject.toml": PYPROJECT, "requirements.txt": "torch\n"}):
        root = make_repo(tmp_path / str(len(files)), files)
        ctx = ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'einops'", config=config)
        apply(root, propose_rule_fix(ctx).edits)
        assert (root / "pyproject.toml").read_text() == PYPROJECT.replace('"numpy"\n', '"numpy",\n    "einops",\n')

    one_line = PYPROJECT.replace('[\n    "torch>=2.1",  # the team\'s pin\n    "numpy"\n]', '["torch>=2.1", "numpy"]')
    root = make_repo(tmp_path / "one", {"pyproject.toml": one_line})  # no requirements.txt: pyproject's
    apply(
        root, propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'einops'")).edits
    )
    assert 'dependencies = ["torch>=2.1", "numpy", "einops"]' in (root / "pyproject.toml").read_text()

    # A last item with a comment and no comma gets its comma before the comment.
    commented = PYPROJECT.replace('    "numpy"\n', '    "numpy"  # for the data\n')
    root = make_repo(tmp_path / "commented", {"pyproject.toml": commented})
    apply(
        root, propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'einops'")).edits
    )
    expected = commented.replace('"numpy"  # for the data\n', '"numpy",  # for the data\n    "einops",\n')
    assert (root / "pyproject.toml").read_text() == expected

    root = make_repo(tmp_path / "one-again", {"pyproject.toml": one_line})
    # Declared there already (an optional extra does not count: the job installs the project's own).
    assert propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'numpy'")) is None


def test_a_requirements_file_beside_a_pyproject_the_setup_does_not_install_is_the_one(tmp_path):
    root = make_repo(tmp_path, {"pyproject.toml": PYPROJECT, "requirements.txt": "torch\n"})
    proposal = propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'einops'"))
    assert proposal.edits[0].path == "requirements.txt"


def test_already_listed_distribution_is_not_added_twice(tmp_path):
    root = make_repo(tmp_path, {"requirements.txt": "PyYAML==6.0.1\n"})
    assert propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'yaml'")) is None


def test_already_listed_under_another_spelling(tmp_path):
    root = make_repo(tmp_path, {"requirements.txt": "scikit_learn>=1.3 ; python_version >= '3.9'\n"})
    assert (
        propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'sklearn.utils'"))
        is None
    )


def test_stdlib_module_is_not_a_requirement(tmp_path):
    root = make_repo(tmp_path, {"requirements.txt": "torch\n"})
    assert propose_rule_fix(ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'tomllib'")) is None


def test_no_import_message_no_proposal(tmp_path):
    root = make_repo(tmp_path, {"requirements.txt": "torch\n"})
    assert (
        propose_rule_fix(ctx_for(root, "import_error", "ImportError", "libcudart.so.12: cannot open shared object"))
        is None
    )


# --- rule: fix-local-import -----------------------------------------------------------------------

LOCAL_REPO = {
    "src/__init__.py": "",
    "src/models.py": "class Net:\n    pass\n\n\ndef build():\n    return Net()\n",
    "src/train.py": "import os\n\nfrom src.modles import Net  # the model\n\n\ndef main():\n    return Net()\n",
    "requirements.txt": "torch\n",
}


def test_misspelt_local_module_is_corrected_in_the_failing_file(tmp_path):
    root = make_repo(tmp_path, LOCAL_REPO)
    proposal = propose_rule_fix(
        ctx_for(
            root,
            "import_error",
            "ModuleNotFoundError",
            "No module named 'src.modles'",
            file="/home/me/proj/src/train.py",
            line=3,
        )
    )

    assert proposal.fixer == "rule:fix-local-import"
    assert proposal.edits == [
        Edit("src/train.py", "from src.modles import Net  # the model", "from src.models import Net  # the model")
    ]
    assert (root / "requirements.txt").read_text() == "torch\n"


def test_misspelt_name_is_corrected_in_the_import_and_its_uses(tmp_path):
    files = dict(LOCAL_REPO)
    files["src/train.py"] = "from .models import Nett, build\n\n\ndef main():\n    return Nett()\n"
    root = make_repo(tmp_path, files)
    proposal = propose_rule_fix(
        ctx_for(root, "import_error", "ImportError", "cannot import name 'Nett' from 'src.models' (/x/src/models.py)")
    )

    apply(root, proposal.edits)
    assert (root / "src/train.py").read_text() == "from .models import Net, build\n\n\ndef main():\n    return Net()\n"
    assert "Net instead of the missing Nett" in proposal.description


def test_local_import_without_close_match_is_left_alone(tmp_path):
    files = dict(LOCAL_REPO)
    files["src/train.py"] = "from src.transformer import Net\n"
    root = make_repo(tmp_path, files)
    assert (
        propose_rule_fix(
            ctx_for(
                root,
                "import_error",
                "ModuleNotFoundError",
                "No module named 'src.transformer'",
                file="src/train.py",
                line=1,
            )
        )
        is None
    )


def test_typo_of_a_top_level_local_module_is_not_sent_to_pypi(tmp_path):
    root = make_repo(tmp_path, {"utils.py": "def seed():\n    pass\n", "main.py": "from utilz import seed\n"})
    proposal = propose_rule_fix(
        ctx_for(root, "import_error", "ModuleNotFoundError", "No module named 'utilz'", file="main.py", line=1)
    )

    assert proposal.fixer == "rule:fix-local-import"
    apply(root, proposal.edits)
    assert (root / "main.py").read_text() == "from utils import seed\n"


# --- rule: config-default -------------------------------------------------------------------------

TRAIN_PY = 'from src.config import DEFAULTS\n\n\ndef main(cfg=DEFAULTS):\n    steps = cfg["warmup_steps"]\n'


def config_repo(root: Path) -> Path:
    return make_repo(root, {"src/__init__.py": "", "src/config.py": CONFIG_PY, "src/train.py": TRAIN_PY})


def key_error_ctx(root: Path, **kwargs) -> FixContext:
    return ctx_for(root, "config_error", "KeyError", "'warmup_steps'", file="src/train.py", line=5, **kwargs)


def test_missing_key_takes_its_value_from_the_base_branch_before_the_docs(tmp_path):
    root = config_repo(tmp_path)
    base = CONFIG_PY.replace('    "epochs": 3,\n', '    "epochs": 3,\n    "warmup_steps": 500,\n')
    (root / "src/config.py").write_text(base)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "exp-a")
    (root / "src/config.py").write_text(CONFIG_PY)
    make_repo(root, {"docs/exp-a.md": "# exp-a\nWe use warmup_steps=100 here.\n"})

    proposal = propose_rule_fix(key_error_ctx(root, base_branch="main"))

    assert proposal.fixer == "rule:config-default"
    assert proposal.description == "add missing config key warmup_steps to src/config.py"
    assert proposal.edits == [Edit("src/config.py", '    "epochs": 3,', '    "epochs": 3,\n    "warmup_steps": 500,')]
    assert 'main:src/config.py:7: "warmup_steps": 500,' in proposal.evidence
    apply(root, proposal.edits)
    assert (root / "src/config.py").read_text() == base


def test_missing_key_takes_its_value_from_the_remote_base_when_the_local_base_is_older(tmp_path):
    # The clone's own main was made before the key was added upstream: origin/main has it.
    root = config_repo(tmp_path)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "old base")
    git(root, "checkout", "-q", "-b", "upstream")
    base = CONFIG_PY.replace('    "epochs": 3,\n', '    "epochs": 3,\n    "warmup_steps": 500,\n')
    (root / "src/config.py").write_text(base)
    git(root, "commit", "-q", "-am", "upstream adds warmup")
    git(root, "update-ref", "refs/remotes/origin/main", "upstream")
    git(root, "checkout", "-q", "-b", "exp-a", "main")

    proposal = propose_rule_fix(key_error_ctx(root, base_branch="main"))

    assert proposal.edits == [Edit("src/config.py", '    "epochs": 3,', '    "epochs": 3,\n    "warmup_steps": 500,')]
    assert 'origin/main:src/config.py:7: "warmup_steps": 500,' in proposal.evidence


def test_missing_key_from_the_branch_doc(tmp_path):
    root = config_repo(tmp_path)
    make_repo(root, {"docs/exp-a.md": "# exp-a\nLinear warmup with a warmup_steps of 100.\n"})
    proposal = propose_rule_fix(key_error_ctx(root))

    apply(root, proposal.edits)
    assert '    "epochs": 3,\n    "warmup_steps": 100,\n}' in (root / "src/config.py").read_text()
    assert "docs/exp-a.md: Linear warmup with a warmup_steps of 100." in proposal.evidence


def test_missing_key_from_another_config_file_in_yaml(tmp_path):
    root = config_repo(tmp_path)
    make_repo(root, {"configs/big.yaml": "lr: 0.05\nwarmup_steps: 2000  # long warmup\n"})
    proposal = propose_rule_fix(key_error_ctx(root, hint="warmup_steps=5"))

    apply(root, proposal.edits)
    assert '"warmup_steps": 2000,' in (root / "src/config.py").read_text()


def test_missing_key_from_earlier_run_config_inline_dict_keeps_quote_style(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "train.py": "CONFIG = {'lr': 0.1,  # tuned\n          'batch_size': 256}\n\n\ndef main():\n"
            "    return CONFIG['warmup_steps']\n",
        },
    )
    proposal = propose_rule_fix(
        ctx_for(
            root,
            "config_error",
            "KeyError",
            "'warmup_steps'",
            file="train.py",
            line=6,
            earlier_run_configs=[{"lr": {"value": 0.1}}, {"warmup_steps": {"value": 50}}],
        )
    )

    assert proposal.edits == [
        Edit("train.py", "          'batch_size': 256}", "          'batch_size': 256, 'warmup_steps': 50}")
    ]
    assert "earlier run config #2: warmup_steps=50" in proposal.evidence


def test_missing_key_without_evidence_is_not_guessed(tmp_path):
    root = config_repo(tmp_path)
    make_repo(root, {"docs/exp-a.md": "# exp-a\nWarmup matters.\n"})
    assert propose_rule_fix(key_error_ctx(root, pr_text="please fix", hint="warmup")) is None


def test_key_error_outside_a_config_is_not_a_config_default(tmp_path):
    root = make_repo(
        tmp_path, {"src/config.py": CONFIG_PY, "train.py": "def step(batch):\n    return batch['labels']\n"}
    )
    ctx = ctx_for(root, "code_error", "KeyError", "'labels'", file="train.py", line=2, hint="labels=1")
    assert propose_rule_fix(ctx) is None


def test_omegaconf_missing_key_is_added_to_the_yaml_section(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "configs/config.yaml": "model:\n  width: 128\ntrain:\n  lr: 1e-3  # adam\n  epochs: 3\n\nseed: 0\n",
            "main.py": "import hydra\n",
        },
    )
    message = "Key 'warmup_steps' is not in struct\n    full_key: train.warmup_steps\n    object_type=dict"
    proposal = propose_rule_fix(
        ctx_for(
            root,
            "config_error",
            "ConfigAttributeError",
            message,
            pr_text="Adds warmup (`warmup_steps: 1e-2` was a typo; use warmup_steps: 200)",
        )
    )
    apply(root, proposal.edits)
    assert (root / "configs/config.yaml").read_text() == (
        "model:\n  width: 128\ntrain:\n  lr: 1e-3  # adam\n  epochs: 3\n  warmup_steps: 1e-2\n\nseed: 0\n"
    )


def test_omegaconf_mandatory_value_fills_the_placeholder(tmp_path):
    root = make_repo(tmp_path, {"configs/config.yaml": "lr: 0.1\nwarmup_steps: ???\n"})
    proposal = propose_rule_fix(
        ctx_for(
            root,
            "config_error",
            "MissingMandatoryValue",
            "Missing mandatory value: warmup_steps",
            hint="set warmup_steps to 300",
        )
    )
    apply(root, proposal.edits)
    assert (root / "configs/config.yaml").read_text() == "lr: 0.1\nwarmup_steps: 300\n"


# --- rule: lower-batch-size -----------------------------------------------------------------------

OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


def test_oom_halves_the_batch_size_keeping_the_comment(tmp_path):
    root = make_repo(
        tmp_path, {"src/config.py": CONFIG_PY.replace('"batch_size": 256,', '"batch_size": 256,  # per GPU')}
    )
    proposal = propose_rule_fix(ctx_for(root, "oom", "torch.OutOfMemoryError", OOM))

    assert proposal.fixer == "rule:lower-batch-size"
    assert proposal.description == "halve batch size 256 → 128 in src/config.py"
    assert proposal.edits == [
        Edit("src/config.py", '    "batch_size": 256,  # per GPU', '    "batch_size": 128,  # per GPU')
    ]


def test_oom_doubles_gradient_accumulation_to_keep_the_effective_batch(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "configs/train.yaml": "data:\n  batch_size: 64 # fits a 40GB card\n"
            "optim:\n  lr: 3e-4\n  gradient_accumulation_steps: 2\n"
        },
    )
    proposal = propose_rule_fix(ctx_for(root, "oom", "torch.OutOfMemoryError", OOM))

    apply(root, proposal.edits)
    assert (root / "configs/train.yaml").read_text() == (
        "data:\n  batch_size: 32 # fits a 40GB card\noptim:\n  lr: 3e-4\n  gradient_accumulation_steps: 4\n"
    )
    assert "gradient_accumulation_steps" in proposal.description


def test_oom_with_argparse_default_and_accumulation_on_one_line(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "train.py": (
                "import argparse\n\np = argparse.ArgumentParser()\n"
                "p.add_argument('--batch-size', type=int, default=32)\n"
                "trainer = dict(batch_size=8, accumulate_grad_batches=1)\n"
            )
        },
    )
    # The run logged batch_size=32: that is the value to lower.
    proposal = propose_rule_fix(ctx_for(root, "oom", "RuntimeError", OOM, run_config={"batch_size": 32}))
    assert proposal.edits == [
        Edit(
            "train.py",
            "p.add_argument('--batch-size', type=int, default=32)",
            "p.add_argument('--batch-size', type=int, default=16)",
        )
    ]

    proposal = propose_rule_fix(ctx_for(root, "oom", "RuntimeError", OOM, run_config={"batch_size": 8}))
    apply(root, proposal.edits)
    assert "trainer = dict(batch_size=4, accumulate_grad_batches=2)\n" in (root / "train.py").read_text()


def test_oom_with_batch_size_one_is_not_lowered(tmp_path):
    root = make_repo(tmp_path, {"src/config.py": CONFIG_PY.replace("256", "1")})
    assert propose_rule_fix(ctx_for(root, "oom", "RuntimeError", OOM)) is None


def test_oom_without_a_batch_size_has_no_rule(tmp_path):
    root = make_repo(tmp_path, {"train.py": "x = 1\n"})
    assert propose_rule_fix(ctx_for(root, "oom", "RuntimeError", OOM)) is None


# --- rule: lower-lr ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "literal, tenth",
    [
        ("0.1", "0.01"),
        ("1e-3", "1e-4"),
        ("3e-4", "3e-5"),
        ("1E-03", "1E-04"),
        ("5e-05", "5e-06"),
        ("2.5e-4", "2.5e-5"),
        ("1", "0.1"),
        ("0.0003", "0.00003"),
        ("1e0", "1e-1"),
        ("10.0", "1.0"),
        ("100", "10"),
        ("0.10", "0.01"),
        ("1_0.0", "1.0"),
    ],
)
def test_divide_by_ten_keeps_the_style(literal, tenth):
    assert divide_by_ten(literal) == tenth


def test_nan_loss_lowers_the_learning_rate_keeping_the_comment(tmp_path):
    root = make_repo(tmp_path, {"src/config.py": CONFIG_PY, "tests/test_x.py": "CFG = {'lr': 5.0}\n"})
    proposal = propose_rule_fix(ctx_for(root, "nan_loss", "FloatingPointError", "Loss is NaN at step 131"))

    assert proposal.fixer == "rule:lower-lr"
    assert proposal.description == "lower learning rate 0.1 → 0.01 in src/config.py"
    apply(root, proposal.edits)
    assert (root / "src/config.py").read_text() == CONFIG_PY.replace('"lr": 0.1,', '"lr": 0.01,')
    assert 'src/config.py:4: "lr": 0.1,  # tuned on the small model' in proposal.evidence


def test_nan_loss_prefers_the_value_the_run_logged(tmp_path):
    root = make_repo(tmp_path, {"configs/a.yaml": "lr: 1e-3\n", "configs/b.yaml": "lr: 3e-4\n"})
    proposal = propose_rule_fix(ctx_for(root, "nan_loss", "", "", run_config={"lr": {"value": 0.0003}}))

    assert proposal.edits == [Edit("configs/b.yaml", "lr: 3e-4", "lr: 3e-5")]


def test_nan_loss_finds_the_lr_a_run_logged_in_a_section_of_its_config(tmp_path):
    # minGPT logs its CfgNode whole (`config.to_dict()`): the trainer's defaults and the
    # script's override are two sites of `learning_rate`; the logged section says which ran.
    root = make_repo(
        tmp_path,
        {
            "mingpt/trainer.py": "def defaults(C):\n    C.learning_rate = 3e-4\n",
            "chargpt.py": "def get_config(C):\n    C.trainer.learning_rate = 5e1\n",
        },
    )
    logged = {"system": {"value": {"seed": 3407}}, "trainer": {"value": {"batch_size": 16, "learning_rate": 50.0}}}
    proposal = propose_rule_fix(ctx_for(root, "nan_loss", "", "", run_config=logged))

    assert proposal.edits == [
        Edit("chargpt.py", "    C.trainer.learning_rate = 5e1", "    C.trainer.learning_rate = 5e0")
    ]


def test_nan_loss_with_a_logged_lr_no_site_holds_is_left_alone(tmp_path):
    # The run used lr=0.05 (a command-line override, say): neither literal is the one in use.
    root = make_repo(tmp_path, {"configs/a.yaml": "lr: 1e-3\n", "src/config.py": CONFIG_PY})
    assert propose_rule_fix(ctx_for(root, "nan_loss", "", "", run_config={"lr": {"value": 0.05}})) is None
    assert propose_rule_fix(ctx_for(root, "oom", "RuntimeError", OOM, run_config={"batch_size": 64})) is None


def test_nan_loss_without_a_logged_lr_needs_one_candidate_or_the_traceback_file(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "src/train.py": "OPTIM = dict(lr=0.5)\nprint(OPTIM)\n",
            "src/finetune.py": "OPTIM = dict(lr=0.01)\nprint(OPTIM)\n",
        },
    )
    assert propose_rule_fix(ctx_for(root, "nan_loss", "FloatingPointError", "Loss is NaN")) is None
    proposal = propose_rule_fix(
        ctx_for(root, "nan_loss", "FloatingPointError", "Loss is NaN", file="/job/src/finetune.py", line=2)
    )
    assert proposal.edits == [Edit("src/finetune.py", "OPTIM = dict(lr=0.01)", "OPTIM = dict(lr=0.001)")]


def test_vendored_code_is_never_edited(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "third_party/optim/config.py": "DEFAULTS = {'lr': 1.0}\n",
            "vendor/lib/config.yaml": "lr: 2.0\n",
            "train.py": "OPTIM = dict(lr=0.5)\n",
        },
    )
    proposal = propose_rule_fix(ctx_for(root, "nan_loss", "FloatingPointError", "Loss is NaN"))
    assert proposal.edits == [Edit("train.py", "OPTIM = dict(lr=0.5)", "OPTIM = dict(lr=0.05)")]
    assert propose_rule_fix(ctx_for(root, "nan_loss", "", "", run_config={"lr": 1.0})) is None


def branch_repo(root: Path, base: dict[str, str], branch: dict[str, str]) -> Path:
    """A git repo whose `main` holds `base` and whose checked-out branch `exp-a` changes `branch`."""
    make_repo(root, base)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "exp-a")
    return commit_files(root, branch)


def commit_files(root: Path, files: dict[str, str]) -> Path:
    make_repo(root, files)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "experiment")
    return root


def nan_ctx(root: Path, **kwargs) -> FixContext:
    kwargs.setdefault("base_branch", "main")
    return ctx_for(root, "nan_loss", "FloatingPointError", "Loss is NaN at step 3", **kwargs)


def test_lr_the_branch_raised_in_a_config_dict_is_restored_from_the_base(tmp_path):
    root = branch_repo(tmp_path, {"src/config.py": CONFIG_PY}, {"src/config.py": CONFIG_PY.replace("0.1,", "10.0,")})
    proposal = propose_rule_fix(nan_ctx(root))

    assert proposal.fixer == "rule:lower-lr"
    assert proposal.description == "restore learning rate 0.1 from main in src/config.py (the branch raised it to 10.0)"
    assert "raised from main's 0.1" in proposal.root_cause
    assert 'main:src/config.py:4: "lr": 0.1,  # tuned on the small model' in proposal.evidence
    apply(root, proposal.edits)
    assert (root / "src/config.py").read_text() == CONFIG_PY


ARGPARSE_MAIN = """\
import argparse

parser = argparse.ArgumentParser()
parser.add_argument('--batch-size', type=int, default=64)
parser.add_argument('--lr', type=float, default=1.0, metavar='LR')
args = parser.parse_args()
"""


def test_lr_the_branch_raised_in_an_argparse_default_is_restored_written_as_the_base_wrote_it(tmp_path):
    # The branch also added a flag above: the same default is found though its line moved.
    raised = ARGPARSE_MAIN.replace("default=1.0", "default=1e3").replace(
        "parser.add_argument('--batch",
        "parser.add_argument('--epochs', type=int, default=14)\nparser.add_argument('--batch",
    )
    root = branch_repo(tmp_path, {"main.py": ARGPARSE_MAIN}, {"main.py": raised})
    proposal = propose_rule_fix(nan_ctx(root))

    assert proposal.description == "restore learning rate 1.0 from main in main.py (the branch raised it to 1e3)"
    assert "main:main.py:5: parser.add_argument('--lr', type=float, default=1.0, metavar='LR')" in proposal.evidence
    apply(root, proposal.edits)
    assert (root / "main.py").read_text() == raised.replace("default=1e3", "default=1.0")


def test_lr_the_branch_raised_in_a_launch_script_flag_is_restored_in_the_script(tmp_path):
    script = "#!/bin/bash\nset -e\npython main.py --epochs 6 \\\n  --lr 20 --clip 0.25\n"
    root = branch_repo(
        tmp_path,
        {"main.py": ARGPARSE_MAIN, "scripts/train.sh": script},
        {"scripts/train.sh": "# faster\n" + script.replace("--lr 20", "--lr 2000")},
    )
    proposal = propose_rule_fix(nan_ctx(root, config={"launch": {"command": "bash scripts/train.sh"}}))

    assert (
        proposal.description == "restore learning rate 20 from main in scripts/train.sh (the branch raised it to 2000)"
    )
    assert "main:scripts/train.sh:4: --lr 20 --clip 0.25" in proposal.evidence
    apply(root, proposal.edits)
    assert (root / "scripts/train.sh").read_text() == "# faster\n" + script


def test_lr_the_branch_did_not_change_is_divided_by_ten_as_before(tmp_path):
    root = branch_repo(tmp_path, {"src/config.py": CONFIG_PY}, {"src/config.py": CONFIG_PY.replace("256", "128")})
    proposal = propose_rule_fix(nan_ctx(root))

    assert proposal.description == "lower learning rate 0.1 → 0.01 in src/config.py"
    assert "lr=0.1 (main's value too)" in proposal.root_cause
    apply(root, proposal.edits)
    assert '"lr": 0.01,' in (root / "src/config.py").read_text()


def test_lr_already_restored_once_is_then_divided_by_ten_not_restored_again(tmp_path):
    root = branch_repo(tmp_path, {"src/config.py": CONFIG_PY}, {"src/config.py": CONFIG_PY.replace("0.1,", "10.0,")})
    first = propose_rule_fix(nan_ctx(root))
    apply(root, first.edits)
    commit_files(root, {})  # the bot commits its fix; the relaunched run still diverges

    second = propose_rule_fix(nan_ctx(root, previous_attempts=[{"number": 1, "fixer": "rule:lower-lr"}]))
    assert first.description.startswith("restore learning rate 0.1 from main")
    assert second.description == "lower learning rate 0.1 → 0.01 in src/config.py"
    assert "(main's value too)" in second.root_cause


@pytest.mark.parametrize(
    "base, expected",
    [
        pytest.param({"src/config.py": CONFIG_PY.replace("0.1,", "1.0,")}, "0.1 → 0.01", id="base value higher"),
        pytest.param({"src/config.py": CONFIG_PY.replace('"lr"', '"momentum"')}, "0.1 → 0.01", id="key absent on base"),
        pytest.param({"src/other.py": "X = 1\n"}, "0.1 → 0.01", id="file absent on base"),
        pytest.param({"src/config.py": CONFIG_PY.replace("0.1,", "1e-2 * 10,")}, "0.1 → 0.01", id="expression on base"),
    ],
)
def test_lr_is_divided_by_ten_when_the_base_gives_no_lower_literal(tmp_path, base, expected):
    root = branch_repo(tmp_path, base, {"src/config.py": CONFIG_PY})
    proposal = propose_rule_fix(nan_ctx(root))
    assert proposal.description == f"lower learning rate {expected} in src/config.py"


def test_lr_raised_on_a_branch_without_a_known_base_is_divided_by_ten(tmp_path):
    root = branch_repo(tmp_path, {"src/config.py": CONFIG_PY}, {"src/config.py": CONFIG_PY.replace("0.1,", "10.0,")})
    proposal = propose_rule_fix(nan_ctx(root, base_branch=None))
    assert proposal.description == "lower learning rate 10.0 → 1.0 in src/config.py"


def test_nan_loss_without_a_learning_rate_has_no_rule(tmp_path):
    root = make_repo(tmp_path, {"train.py": "steps = 10\n"})
    assert propose_rule_fix(ctx_for(root, "nan_loss", "", "")) is None


# --- rule: closest-path --------------------------------------------------------------------------


def test_missing_data_file_is_replaced_by_the_closest_existing_path(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "data/train.csv": "a,b\n",
            "data/test.csv": "a,b\n",
            "src/config.py": 'DATA = {\n    "train": "data/trian.csv",  # 80%\n    "test": "data/test.csv",\n}\n',
        },
    )
    proposal = propose_rule_fix(
        ctx_for(root, "data_not_found", "FileNotFoundError", "[Errno 2] No such file or directory: 'data/trian.csv'")
    )

    assert proposal.fixer == "rule:closest-path"
    assert proposal.edits == [
        Edit("src/config.py", '    "train": "data/trian.csv",  # 80%', '    "train": "data/train.csv",  # 80%')
    ]


def test_missing_path_from_a_joined_absolute_path_in_yaml(tmp_path):
    root = make_repo(
        tmp_path,
        {
            "data/imagenet/train/x.bin": "",
            "configs/data.yaml": "root: data/imagenet\nsplit: trian\n",
            "main.py": "import os\n",
        },
    )
    message = "[Errno 2] No such file or directory: '/scratch/job/data/imagenet/trian'"
    proposal = propose_rule_fix(ctx_for(root, "data_not_found", "FileNotFoundError", message))

    apply(root, proposal.edits)
    assert (root / "configs/data.yaml").read_text() == "root: data/imagenet\nsplit: train\n"


def test_missing_path_joined_from_a_root_a_dataset_name_and_a_file_fixes_the_name(tmp_path):
    # nanoGPT: data_dir = os.path.join('data', dataset), then os.path.join(data_dir, 'train.bin'),
    # with `dataset` set in the config file the launch names.
    root = make_repo(
        tmp_path,
        {
            "data/shakespeare_char/train.bin": "",
            "data/openwebtext/train.bin": "",
            # A W&B project and run name hold the same word but name no path: they stay, here
            # and in a file searched before the one that names the dataset.
            "config/a_logging.py": "wandb_project = 'shakespeare-char'\n",
            "config/train_char.py": (
                "wandb_project = 'shakespeare-char'\nwandb_run_name = 'shakespeare-char'\n"
                "dataset = 'shakespeare-char'\nbatch_size = 4\n"
            ),
            "train.py": "import os\ndata_dir = os.path.join('data', dataset)\n",
        },
    )
    message = "[Errno 2] No such file or directory: 'data/shakespeare-char/train.bin'"
    proposal = propose_rule_fix(ctx_for(root, "data_not_found", "FileNotFoundError", message))

    assert proposal.edits == [
        Edit("config/train_char.py", "dataset = 'shakespeare-char'", "dataset = 'shakespeare_char'")
    ]


def test_missing_path_without_a_close_one_is_left_alone(tmp_path):
    root = make_repo(tmp_path, {"data/train.csv": "", "train.py": "open('data/validation.csv')\n"})
    assert (
        propose_rule_fix(
            ctx_for(
                root,
                "data_not_found",
                "FileNotFoundError",
                "[Errno 2] No such file or directory: 'data/validation.csv'",
            )
        )
        is None
    )


def test_missing_wandb_artifact_is_not_guessed(tmp_path):
    root = make_repo(tmp_path, {"train.py": "run.use_artifact('team/proj/dataset:v3')\n"})
    assert (
        propose_rule_fix(ctx_for(root, "data_not_found", "CommError", "artifact 'team/proj/dataset:v3' not found"))
        is None
    )


def test_category_without_rules_has_no_proposal(tmp_path):
    root = make_repo(tmp_path, {"src/config.py": CONFIG_PY})
    assert propose_rule_fix(ctx_for(root, "infra", "", "")) is None


def test_the_shipped_mapping_is_pipreqs_data_with_shared_namespaces_unanswered():
    from bot.fixers.distributions import _shipped_mapping

    mapping = _shipped_mapping()
    assert len(mapping) > 800 and mapping["sklearn"] == "scikit_learn"
    assert mapping["azure"] is None  # a namespace many distributions share: no single answer


def test_missing_key_prefers_the_docs_over_earlier_runs_and_reads_the_hint(tmp_path):
    root = config_repo(tmp_path)
    runs = [{"warmup_steps": 7}]
    proposal = propose_rule_fix(
        key_error_ctx(root, pr_text="Adds warmup: `warmup_steps = 1_000`", earlier_run_configs=runs)
    )
    assert '"warmup_steps": 1_000,' in proposal.edits[0].replace

    proposal = propose_rule_fix(key_error_ctx(root, earlier_run_configs=runs))
    assert '"warmup_steps": 7,' in proposal.edits[0].replace


def test_missing_path_outside_the_repo_is_left_alone(tmp_path):
    root = make_repo(tmp_path, {"data/train.csv": "", "train.py": "open('../data/trian.csv')\n"})
    assert (
        propose_rule_fix(
            ctx_for(
                root, "data_not_found", "FileNotFoundError", "[Errno 2] No such file or directory: '../data/trian.csv'"
            )
        )
        is None
    )


# --- a module used but never imported -----------------------------------------------------------

UNIMPORTED = '''"""Cosine schedule."""
import torch


def lr_at(step, total):
    return 0.5 * (1 + math.cos(math.pi * step / total))
'''


def test_a_standard_module_used_but_never_imported_is_imported(tmp_path):
    root = make_repo(tmp_path, {"train.py": UNIMPORTED})
    ctx = ctx_for(root, "import_error", "NameError", "name 'math' is not defined", file="train.py", line=6)
    proposal = propose_rule_fix(ctx)

    assert proposal.fixer == "rule:add-import"
    apply(root, proposal.edits)
    assert (root / "train.py").read_text() == UNIMPORTED.replace("import torch\n", "import torch\nimport math\n")


def test_a_module_another_file_imports_is_imported_where_it_was_forgotten(tmp_path):
    # scipy is not installed here and its import name is its distribution's: only the repo says
    # it is a module, by importing it in another file (or by listing it in requirements.txt).
    used = UNIMPORTED.replace("math.cos(math.pi", "scipy.special.cos(scipy.pi")
    ctx_args = ("import_error", "NameError", "name 'scipy' is not defined")
    for other in ({"utils.py": "import scipy.special\n"}, {"requirements.txt": "numpy\nSciPy>=1.10\n"}):
        root = make_repo(tmp_path / next(iter(other)), {"train.py": used, **other})
        proposal = propose_rule_fix(ctx_for(root, *ctx_args, file="train.py", line=6))
        assert proposal.fixer == "rule:add-import", other
        apply(root, proposal.edits)
        assert "import torch\nimport scipy\n" in (root / "train.py").read_text()

    root = make_repo(tmp_path / "alone", {"train.py": used, "utils.py": "import scipyx\n"})
    assert propose_rule_fix(ctx_for(root, *ctx_args, file="train.py", line=6)) is None


def test_an_undefined_name_that_is_no_module_is_not_imported(tmp_path):
    # `scheduler.cos()` reads a variable the code never set: importing a module `scheduler` is no fix.
    root = make_repo(tmp_path, {"train.py": UNIMPORTED.replace("math.cos(math.pi", "scheduler.cos(scheduler.pi")})
    ctx = ctx_for(root, "import_error", "NameError", "name 'scheduler' is not defined", file="train.py", line=6)
    assert propose_rule_fix(ctx) is None


# --- a config's `_target_` naming code the repo does not define ---------------------------------

DENSE = "from torch import nn\n\n\nclass DenseNet(nn.Module):\n    pass\n"
DROPOUT = "from src.models.components.dense_net import DenseNet\n\n\nclass DropoutDenseNet(DenseNet):\n    pass\n"


def hydra_repo(tmp_path: Path, target: str) -> Path:
    return make_repo(
        tmp_path,
        {
            "src/__init__.py": "",
            "src/models/__init__.py": "",
            "src/models/components/__init__.py": "",
            "src/models/components/dense_net.py": DENSE,
            "src/models/components/dropout_dense_net.py": DROPOUT,
            "configs/model/net.yaml": f"net:\n  _target_: {target}\n  p: 0.1\n",
            "configs/model/other.yaml": "net:\n  _target_: src.models.components.dense_net.DenseNet\n",
        },
    )


def hydra_log(target: str, error: str) -> list[str]:
    """Hydra 1.3's report of a `_target_` it cannot load (HYDRA_FULL_ERROR unset)."""
    return [
        "Error executing job with overrides: ['experiment=tiny']",
        "Traceback (most recent call last):",
        '  File "/env/lib/python3.11/site-packages/hydra/_internal/utils.py", line 650, in _locate',
        "    obj = getattr(obj, part)",
        f"ImportError: Error loading '{target}':",
        f"{error}",
        "Are you sure that module is in the PYTHONPATH?",
        "full_key: model.net",
    ]


def test_a_hydra_target_in_a_misspelt_module_loads_the_module_that_defines_its_class(tmp_path):
    # dropout_net is no close spelling of dropout_dense_net, but only that module defines the class.
    target = "src.models.components.dropout_net.DropoutDenseNet"
    root = hydra_repo(tmp_path, target)
    log = hydra_log(target, "ModuleNotFoundError(\"No module named 'src.models.components.dropout_net'\")")
    proposal = propose_rule_fix(ctx_for(root, "import_error", log=log))

    assert proposal.fixer == "rule:closest-target"
    assert [edit.path for edit in proposal.edits] == ["configs/model/net.yaml"]
    apply(root, proposal.edits)
    fixed = "  _target_: src.models.components.dropout_dense_net.DropoutDenseNet\n"
    assert (root / "configs/model/net.yaml").read_text() == f"net:\n{fixed}  p: 0.1\n"


def test_a_hydra_target_naming_a_misspelt_class_loads_the_class(tmp_path):
    target = "src.models.components.dense_net.DenseNett"
    root = hydra_repo(tmp_path, target)
    log = hydra_log(target, "AttributeError: module 'src.models.components.dense_net' has no attribute 'DenseNett'")
    proposal = propose_rule_fix(ctx_for(root, "import_error", log=log))

    apply(root, proposal.edits)
    assert "_target_: src.models.components.dense_net.DenseNet\n" in (root / "configs/model/net.yaml").read_text()


def test_a_hydra_target_without_a_counterpart_or_outside_the_repo_is_left_alone(tmp_path):
    # Modules never committed and a third-party class.
    for target, error in (
        ("src.models.components.conv_net.ConvNet", "No module named 'src.models.components.conv_net'"),
        # A conv_net.py defining its own DropoutDenseNet was not committed: dropout_dense_net's is another net.
        ("src.models.components.conv_net.DropoutDenseNet", "No module named 'src.models.components.conv_net'"),
        ("torch.optim.Adamm", "AttributeError: module 'torch.optim' has no attribute 'Adamm'"),
    ):
        root = hydra_repo(tmp_path / target, target)
        assert propose_rule_fix(ctx_for(root, "import_error", log=hydra_log(target, error))) is None, target
