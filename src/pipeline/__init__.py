"""The ML pipeline: exactly the DVC stages (dvc.yaml) and what only they use; each a pure core plus a thin `main()`."""
