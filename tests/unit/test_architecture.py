"""The package layout holds: the import-linter layer contract, the one import rule import-linter
cannot express, and a wheel that installs judge_eval and nothing else."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "judge_eval"


def test_the_layer_contract_holds() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_the_distillation_package_imports_llama_index_finetuning() -> None:
    """import-linter cannot forbid a subpackage of an external package, so this walks the AST."""
    offenders = {str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")
                 if "distillation" not in path.relative_to(PACKAGE).parts
                 and any(m == "llama_index.finetuning" or m.startswith("llama_index.finetuning.")
                         for m in imported_modules(path))}
    assert not offenders
    # and the check can see such an import where it is
    assert any(m.startswith("llama_index.finetuning") for m in imported_modules(PACKAGE / "distillation" / "ft_engine.py"))


def test_no_two_modules_share_a_name() -> None:
    names = [p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__"]
    packages = [p.parent.name for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE]
    assert len(set(names + packages)) == len(names + packages), sorted(names + packages)


def test_the_wheel_holds_judge_eval_only(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "judge_eval", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "fixtures", source / "fixtures", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                             str(source), "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top = {name.split("/")[0] for name in archive.namelist()}
        entry_points = archive.read(next(n for n in archive.namelist() if n.endswith("entry_points.txt"))).decode()
    assert top == {"judge_eval", "judge_eval-0.1.0.dist-info"}, top
    assert "[pytest11]\njudge_eval = judge_eval.plugin" in entry_points
