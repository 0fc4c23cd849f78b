"""Pure figure builders: data in, plotly Figure out. No Streamlit here, so every figure is testable
and reusable (pages, the static HTML report, notebooks)."""
