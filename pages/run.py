"""Run: choose problems, model, strategy and budget; start a run in its own process; watch it live.
Two pieces: the form (pages/_run_form.py) and the live monitor (pages/_run_monitor.py)."""
from __future__ import annotations

import streamlit as st

from pages.common import open_store, param
from pages._run_form import form
from pages._run_monitor import monitor
from thinktrace.settings import read_only

st.title("Run")
store = open_store()
if read_only():
    st.info("This app is shared read-only: runs cannot be started, stopped or resumed here. Progress of "
            "runs in this database shows below; start your own with `python -m reasoning run` or "
            "`bash scripts/dev.sh app` on your machine.", icon=":material/lock:")
else:
    with st.expander("New run", expanded=param("run") is None and "watch" not in st.session_state):
        form(store.url)
monitor(store)

with st.expander("Serve the engine as an OpenAI-compatible API", expanded=False):
    st.caption("Every request becomes a problem of a `serve` run in the store (one run per day and setting), "
               "with its whole tree: it shows up on this page and in the Library as it arrives. The strategy "
               "comes from the `thinktrace` object or the model name `STRATEGY@N/MODEL` (e.g. `best_of_n@8/lab`).")
    st.code("python -m reasoning serve --model lab --port 8000   # 127.0.0.1 only; elsewhere $THINKTRACE_API_KEY",
            language="bash")
    st.code("curl -s http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' -d '{\n"
            '  "model": "lab", "messages": [{"role": "user", "content": "Ann has 3 apples and buys 4 more. How many now?"}],\n'
            '  "thinktrace": {"strategy": "best_of_n", "n": 8, "verifier": "prm:lab"}}\'', language="bash")
