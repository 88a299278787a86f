# Continuous training: retrain on the newest data, judge champion vs challenger, propose a winner; model lineage.
# Logic lives in src/ops/retrain/ and src/ops/lineage.py (tested by tests/test_{retrain,lineage,closed_loop}.py).
.PHONY: retrain retrain-push retrain-propose lineage

RETRAIN_OUT ?= retrain
# Only from the command line: ENV is also a shell variable some systems set.
LINEAGE_ENV := $(if $(filter command line,$(origin ENV)),$(ENV))

retrain: venv ## Retrain on the newest data [CUTOFF=YYYY-MM-DD] [CHAMPION=dir]: retrain/decision.json + report.md
	$(BIN)/python -m ops.retrain run --out "$(RETRAIN_OUT)" $(if $(CUTOFF),--cutoff "$(CUTOFF)") \
		$(if $(CHAMPION),--champion "$(CHAMPION)")

retrain-push: venv ## dvc push a promoted challenger's data and model (no-op without a default DVC remote)
	$(BIN)/python -m ops.retrain push --out "$(RETRAIN_OUT)"

retrain-propose: venv ## Commit a promoted challenger on retrain/<data hash>, push, open a PR to staging [DVC_PUSH=0]
	$(BIN)/python -m ops.retrain propose --out "$(RETRAIN_OUT)" $(if $(filter 0,$(DVC_PUSH)),--no-dvc-push)

lineage: venv ## Which data, params and code produced a model [ENV=production | REV=<git rev>] (default: model/)
	$(BIN)/python -m ops.lineage show $(if $(LINEAGE_ENV),--env "$(LINEAGE_ENV)") $(if $(REV),--rev "$(REV)")
