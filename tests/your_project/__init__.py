"""These check YOUR project as configured: params.yaml, data/ (data.dvc), deploy/ and the README's summary.

After `make adopt` they must pass for your data. The rest of the suite never reads params.yaml or data/: it
builds its own contract and data from tests/support/params.yaml (the churn demo), so it stays green in a fork.
"""
