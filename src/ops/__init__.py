"""Jobs that run around the pipeline (CI, cron, operators): report, retrain, monitor, deliver, lineage."""
