"""Run reports: PNG plots of a run's metrics and the before/after table (`rlvr.report.plots`)."""
