# Sourced by demo.sh and test.sh (the README's two quick-start commands): one way to install.
# quietly CMD...: run a step, showing its output only when it fails.
# install_venv EXTRAS: make .venv if it is missing (with $PYTHON, default python3) and install the
# package editable with those extras, quietly.
quietly() {
  local out; out="$(mktemp)"
  if ! "$@" >"$out" 2>&1; then cat "$out" >&2; rm -f "$out"; echo "failed: $*" >&2; exit 1; fi
  rm -f "$out"
}
install_venv() {
  echo "Installing into .venv with [$1] (a few minutes on a fresh clone; its output only if it fails)"
  [ -x .venv/bin/python ] || quietly "${PYTHON:-python3}" -m venv .venv
  quietly .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  quietly .venv/bin/pip install -q --disable-pip-version-check -e ".[$1]"
}
