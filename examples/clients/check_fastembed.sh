#!/usr/bin/env bash
# Check artifact folders in fastembed, in an environment of its own:
#
#   examples/clients/check_fastembed.sh [ARTIFACT_DIR ...]
#
# Without a folder it first builds the shipped recipes/minilm-onnx.yaml and recipes/minilm-onnx-int8.yaml into a
# temporary folder, with the exporter of $EXPORTER_PYTHON (default: python, i.e. the active environment).
# The fastembed environment is $FASTEMBED_VENV (default examples/clients/.venv-fastembed, git-ignored): made with
# `python3 -m venv` and `pip install "$FASTEMBED_SPEC"` (default "fastembed>=0.9.1,<0.10") from the package
# registry on first use, reused afterwards. It needs nothing from this repository: check_fastembed.py compares
# with the folder's stored reference (parity/), so no torch there.
#
# Exit: 0 every checked variant matched, 1 a mismatch, 2 bad input, 3 the environment could not be made
# (no venv module, pip could not install fastembed, e.g. no network) or the artifacts could not be built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${FASTEMBED_VENV:-$here/.venv-fastembed}"
spec="${FASTEMBED_SPEC:-fastembed>=0.9.1,<0.10}"

fail_setup() { echo "check_fastembed: $*" >&2; exit 3; }

if ! "$venv/bin/python" -c "import fastembed" >/dev/null 2>&1; then
    log="$(mktemp)"
    echo "check_fastembed: installing $spec into $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv" >"$log" 2>&1 \
        || fail_setup "cannot create a venv at $venv: $(tail -n 2 "$log" | tr '\n' ' ')"
    env -u PYTHONPATH "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --retries 1 \
        --timeout 30 "$spec" >"$log" 2>&1 \
        || fail_setup "pip could not install '$spec' from the registry: $(grep -v '^WARNING' "$log" | tail -n 2 | tr '\n' ' ')"
    rm -f "$log"
fi

folders=("$@")
# shellcheck source=default_folders.sh
source "$here/default_folders.sh"
if [ ${#folders[@]} -eq 0 ]; then
    default_folders
fi

HF_HUB_OFFLINE=1 env -u PYTHONPATH "$venv/bin/python" "$here/check_fastembed.py" "${folders[@]}"
