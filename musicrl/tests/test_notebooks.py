"""The notebooks: stored without outputs, thin, and running top to bottom.

Each notebook is executed headless with nbclient on the ``python3`` kernel of this
interpreter, from the notebooks folder (as Jupyter runs it), with ``MUSICRL_QUICK=1``
(tiny settings: few clips, few steps, a training run of a few iterations), a data
folder of a few chorales (``MUSICRL_DATA``) and a temporary runs folder
(``MUSICRL_RUNS``), so nothing is written to the repository.
"""

import ast
import os
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = ["01_pipeline.ipynb", "02_discriminator.ipynb", "03_agent.ipynb", "04_evaluation.ipynb"]
# what TensorFlow, absl and Python's warnings print when they are not kept quiet
NOISE = re.compile(r"oneDNN|absl::|I0000|E0000|W0000|cuda|Warning:|WARNING", re.IGNORECASE)
# tqdm.auto (imported by librosa's pooch) warns once when ipywidgets is missing; `jupyter` installs it
NO_WIDGETS = re.compile(r"^.*TqdmWarning: IProgress not found.*\n\s*from \.autonotebook import .*\n?", re.M)


def _read(path):
    return nbformat.read(path, as_version=4)


def _code(cell):
    """A code cell's source as Python: IPython magics (``%time x = f()``) keep their statement."""
    lines = []
    for line in cell.source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("%%"):
            lines.append("")
        elif stripped.startswith("%"):
            rest = stripped.split(None, 1)[1] if " " in stripped else ""
            lines.append(line[: len(line) - len(stripped)] + (rest if stripped.startswith("%time") else "pass"))
        else:
            lines.append(line)
    return "\n".join(lines)


def test_the_notebooks_are_all_there():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
        assert "execution" not in cell.metadata, f"{path.name} cell {i} has execution timing metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin(path):
    nb = _read(path)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert "MUSICRL_QUICK" in code_cells[0].source, "the first code cell must read the quick-settings switch"
    for i, cell in enumerate(code_cells):
        tree = ast.parse(_code(cell), filename=f"{path.name} code cell {i}")
        defined = [type(n).__name__ for n in ast.walk(tree)
                   if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defined, f"{path.name} code cell {i} defines {defined}: put it in the package"
    # every code cell is explained
    kinds = [c.cell_type for c in nb.cells]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= len(code_cells) // 2


# --------------------------------------------------------------------------
# running them


@pytest.fixture(scope="module")
def quick_env(tmp_path_factory):
    """A few chorales and an empty runs folder, shared by the notebooks of this module."""
    from musicrl.music.data import build_chorales

    root = tmp_path_factory.mktemp("notebooks")
    build_chorales(root / "data", limit=8, progress=False)  # 5 held out at holdout_fraction=0.5
    return {"MUSICRL_QUICK": "1", "MUSICRL_DATA": str(root / "data"), "MUSICRL_RUNS": str(root / "runs"),
            "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


def _ensure_run(env):
    """Notebook 04 evaluates a run: the one notebook 03 wrote, or a tiny one made here."""
    from musicrl.config import config_from_overrides
    from musicrl.store.runs import find_latest_run
    from musicrl.learning.train import train

    if find_latest_run(env["MUSICRL_RUNS"]) is None:
        cfg = config_from_overrides({
            "holdout_fraction": 0.5, "iterations": 2, "pretrain_steps": 2, "batch_size": 8, "policy_hidden": 16,
            "policy_embed": 8, "d_channels": 8, "policy_jit_compile": False, "sample_every": 0,
            "n_saved_samples": 1,
        })
        train(cfg, data=env["MUSICRL_DATA"], out=env["MUSICRL_RUNS"], progress=False, handle_signals=False,
              log=lambda line: None)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, quick_env, monkeypatch):
    from nbclient import NotebookClient

    for key, value in quick_env.items():
        monkeypatch.setenv(key, value)
    if path.name.startswith("04"):
        _ensure_run(quick_env)
    repo_runs = NOTEBOOKS_DIR.parent / "runs"
    runs_before = sorted(os.listdir(repo_runs)) if repo_runs.is_dir() else None
    nb = _read(path)
    client = NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback

    outputs = [(i, out) for i, cell in enumerate(nb.cells) if cell.cell_type == "code" for out in cell.outputs]
    assert outputs, f"{path.name} showed nothing"
    for i, out in outputs:
        if out.output_type == "stream":
            text = NO_WIDGETS.sub("", out.text)
            assert out.name == "stdout" or not text.strip(), f"{path.name} cell {i} wrote to stderr:\n{text[:2000]}"
            assert not NOISE.search(text), f"{path.name} cell {i} printed log noise:\n{text[:2000]}"
    figures = sum("image/png" in out.get("data", {}) for _, out in outputs)
    assert figures >= 1, f"{path.name} drew no figure"
    # the notebooks wrote only where they were told to
    assert (sorted(os.listdir(repo_runs)) if repo_runs.is_dir() else None) == runs_before
    assert not any(p.is_dir() and p.name != ".ipynb_checkpoints" for p in NOTEBOOKS_DIR.iterdir())
