"""The application on top of the engine (`reasoning/`): runs into the store, sweeps, launching runs
in their own process, curves, reports, peer imports and the command line. See docs/architecture.md."""
