# Create (or reuse) and activate the musicrl environment.  Usage:
#
#     source setup.sh                # CPU build of TensorFlow (the default)
#     MUSICRL_GPU=1 source setup.sh  # GPU build (tensorflow[and-cuda]), for a machine with an NVIDIA GPU
#
# With conda on the PATH it makes the conda env of environment.yml (name: musicrl); without
# conda it makes a virtual environment in .venv with the same packages. Sourcing it again when
# nothing changed only activates the environment. It never exits the calling shell: on failure
# it prints what went wrong and returns non-zero. Works from bash and zsh.

_musicrl_setup() {
    local here src stamp want py gpu extras
    if [ -n "${BASH_SOURCE:-}" ]; then
        src="${BASH_SOURCE[0]}"
    elif [ -n "${ZSH_VERSION:-}" ]; then
        eval 'src="${(%):-%x}"'
    else
        src="./setup.sh"
    fi
    here="$(cd "$(dirname "$src")" && pwd)" || { echo "setup.sh: cannot find the repository folder" >&2; return 1; }
    if [ ! -f "$here/pyproject.toml" ]; then
        echo "setup.sh: run it from the musicrl repository (no pyproject.toml in $here)" >&2
        return 1
    fi

    gpu="${MUSICRL_GPU:-0}"
    if [ "$gpu" = "1" ]; then extras="gpu,test,notebooks"; else extras="cpu,test,notebooks"; fi
    # The environment is rebuilt only when what it is made from changes.
    want="$(cat "$here/pyproject.toml" "$here/environment.yml" "$here/setup.sh" | cksum | cut -d' ' -f1)-$extras"

    if command -v conda >/dev/null 2>&1 && [ "${MUSICRL_NO_CONDA:-0}" != "1" ]; then
        _musicrl_setup_conda "$here" "$want" "$gpu" "$extras" || return 1
    else
        _musicrl_setup_venv "$here" "$want" "$extras" || return 1
    fi
    # Quiet TensorFlow's C++ start-up chatter; users can override it.
    export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
    echo "musicrl environment ready: $(command -v python) ($(python --version 2>&1))"
    return 0
}

_musicrl_setup_venv() {
    local here="$1" want="$2" extras="$3" py stamp
    stamp="$here/.venv/.musicrl-setup"
    py="${MUSICRL_PYTHON:-}"
    if [ -z "$py" ]; then
        for candidate in python3.11 python3 python; do
            if command -v "$candidate" >/dev/null 2>&1 \
                && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
                py="$candidate"
                break
            fi
        done
    fi
    if [ -z "$py" ]; then
        echo "setup.sh: musicrl needs Python 3.11 (set MUSICRL_PYTHON=/path/to/python3.11, or install conda)" >&2
        return 1
    fi
    if [ ! -x "$here/.venv/bin/python" ]; then
        echo "setup.sh: creating $here/.venv with $("$py" --version 2>&1)"
        "$py" -m venv "$here/.venv" || { echo "setup.sh: could not create .venv" >&2; return 1; }
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "setup.sh: installing musicrl and its dependencies into .venv (a few minutes the first time)"
        "$here/.venv/bin/python" -m pip install --quiet --upgrade pip \
            || { echo "setup.sh: pip upgrade failed" >&2; return 1; }
        _musicrl_install "$here/.venv/bin/python" "$here" "$extras" || return 1
        echo "$want" > "$stamp"
    fi
    # shellcheck disable=SC1091
    . "$here/.venv/bin/activate" || { echo "setup.sh: could not activate .venv" >&2; return 1; }
    hash -r 2>/dev/null
    return 0
}

_musicrl_setup_conda() {
    local here="$1" want="$2" gpu="$3" extras="$4" base stamp prefix
    base="$(conda info --base 2>/dev/null)" || { echo "setup.sh: conda info failed" >&2; return 1; }
    # conda's shell functions are needed for 'conda activate' inside a sourced script
    # shellcheck disable=SC1091
    . "$base/etc/profile.d/conda.sh" || { echo "setup.sh: cannot load conda's shell functions" >&2; return 1; }
    if ! conda env list | awk '{print $1}' | grep -qx musicrl; then
        echo "setup.sh: creating the conda env 'musicrl' from environment.yml"
        (cd "$here" && conda env create -f environment.yml) || { echo "setup.sh: conda env create failed" >&2; return 1; }
    fi
    conda activate musicrl || { echo "setup.sh: conda activate musicrl failed" >&2; return 1; }
    prefix="$(python -c 'import sys; print(sys.prefix)')"
    stamp="$prefix/.musicrl-setup"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        (cd "$here" && conda env update -f environment.yml) || { echo "setup.sh: conda env update failed" >&2; return 1; }
        _musicrl_install python "$here" "$extras" || return 1
        echo "$want" > "$stamp"
    fi
    return 0
}

_musicrl_install() {
    local py="$1" here="$2" extras="$3"
    if [[ "$extras" == gpu* ]]; then
        # the CPU and GPU builds both provide the 'tensorflow' module: keep only one
        "$py" -m pip uninstall --quiet --yes tensorflow-cpu >/dev/null 2>&1
    else
        "$py" -m pip uninstall --quiet --yes tensorflow >/dev/null 2>&1
    fi
    (cd "$here" && "$py" -m pip install --quiet -e ".[$extras]") \
        || { echo "setup.sh: pip install of musicrl failed (see the messages above)" >&2; return 1; }
    # tinysoundfont renders the General MIDI soundfont offline; its wheel declares pyaudio for
    # live playback, which needs portaudio headers, so it is installed without its dependencies.
    "$py" -m pip install --quiet --no-deps "tinysoundfont==0.3.7" \
        || { echo "setup.sh: pip install of tinysoundfont failed" >&2; return 1; }
    # the notebooks run on a kernel of this environment
    "$py" -m ipykernel install --sys-prefix --name musicrl --display-name "Python (musicrl)" >/dev/null \
        || { echo "setup.sh: could not register the Jupyter kernel" >&2; return 1; }
    return 0
}

_musicrl_setup
_musicrl_status=$?
unset -f _musicrl_setup _musicrl_setup_venv _musicrl_setup_conda _musicrl_install
# 'return' works when sourced; when run as a program, fall back to exit.
return $_musicrl_status 2>/dev/null || exit $_musicrl_status
