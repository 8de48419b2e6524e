# Sourced by the client check scripts (check_fastembed.sh, check_transformersjs.sh), which define $repo,
# a `folders` array and fail_setup.
#
# default_folders: build the shipped recipes/minilm-onnx.yaml and recipes/minilm-onnx-int8.yaml with the exporter
# of $EXPORTER_PYTHON (default: python) into a temporary folder, removed on exit, and add them to `folders`.
default_folders() {
    build="$(mktemp -d)"
    trap 'rm -rf "$build"' EXIT
    for recipe in minilm-onnx minilm-onnx-int8; do
        "${EXPORTER_PYTHON:-python}" -m exporter run "$repo/recipes/$recipe.yaml" --output "$build/$recipe" --quiet \
            || fail_setup "could not build recipes/$recipe.yaml (is the exporter installed in ${EXPORTER_PYTHON:-python}?)"
        folders+=("$build/$recipe")
    done
}
