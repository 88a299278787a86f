"""The ML pipeline: one module per DVC stage, each a pure core plus a thin `main()`."""
