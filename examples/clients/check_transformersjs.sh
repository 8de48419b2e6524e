#!/usr/bin/env bash
# Check artifact folders in transformers.js (@huggingface/transformers in Node), in an environment of its own:
#
#   examples/clients/check_transformersjs.sh [ARTIFACT_DIR ...]
#
# Without a folder it first builds the shipped recipes/minilm-onnx.yaml and recipes/minilm-onnx-int8.yaml into a
# temporary folder, with the exporter of $EXPORTER_PYTHON (default: python, i.e. the active environment).
# The library goes into examples/clients/node_modules (git-ignored): `npm install` of package.json from the
# registry on first use, with ONNXRUNTIME_NODE_INSTALL=skip (onnxruntime-node's CPU binaries ship in its package;
# its install script would otherwise try to download more), reused afterwards. Needs node >= 18 and npm
# (Debian: apt-get install nodejs npm).
#
# Exit: 0 every checked variant matched, 1 a mismatch, 2 bad input, 3 the environment could not be made
# (no node/npm, npm could not install the library, e.g. no network) or the artifacts could not be built.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

fail_setup() { echo "check_transformersjs: $*" >&2; exit 3; }

command -v node >/dev/null 2>&1 || fail_setup "node is not installed (Debian: apt-get install nodejs npm)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 18 ] || fail_setup "node $(node --version) is too old: transformers.js 4 needs node >= 18"

wanted="$(node -p "require('$here/package.json').dependencies['@huggingface/transformers']")"
installed="$(node -p "try { require('$here/node_modules/@huggingface/transformers/package.json').version } catch { '' }")"
if [ "$installed" != "$wanted" ]; then
    command -v npm >/dev/null 2>&1 || fail_setup "npm is not installed (Debian: apt-get install npm)"
    echo "check_transformersjs: npm install @huggingface/transformers@$wanted into $here/node_modules" >&2
    log="$(mktemp)"
    (cd "$here" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-package-lock --no-audit --no-fund \
        --fetch-retries=1 --fetch-timeout=60000 >"$log" 2>&1) \
        || fail_setup "npm could not install @huggingface/transformers@$wanted: $(grep -i 'err' "$log" | tail -n 2 | tr '\n' ' ')"
    rm -f "$log"
fi

folders=("$@")
# shellcheck source=default_folders.sh
source "$here/default_folders.sh"
if [ ${#folders[@]} -eq 0 ]; then
    default_folders
fi

node "$here/check_transformersjs.mjs" "${folders[@]}"
