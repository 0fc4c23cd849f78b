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
