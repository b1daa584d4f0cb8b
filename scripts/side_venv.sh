# Sourced by the scripts that need a virtual env of their own beside .venv (a tool whose pins clash with the
# project's, or a build-time-only dependency).
#   side_venv DIR STAMP_FILE PIP_ARGS... [-- PIP_ARGS...]
# creates DIR once per content of STAMP_FILE (the calling script: editing its pins reinstalls), running one
# `pip install` per group of arguments, in order (e.g. a pinned CPU torch before a package that pulls torch).
side_venv() {
    local dir=$1 stamp_file=$2
    shift 2
    local py=${PYTHON:-python3.11}
    command -v "$py" >/dev/null 2>&1 || py=python3
    local stamp
    stamp=$dir/.installed-$(sha256sum "$stamp_file" | cut -c1-16)
    [ -f "$stamp" ] && return 0
    [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
    echo "[bootstrap] installing into $dir"
    local group=() arg
    for arg in "$@" --; do
        if [ "$arg" = "--" ]; then
            [ ${#group[@]} -eq 0 ] || "$dir/bin/python" -m pip install -q "${group[@]}"
            group=()
        else
            group+=("$arg")
        fi
    done
    rm -f "$dir"/.installed-*
    touch "$stamp"
}
