# Continuous training: retrain on the newest data, judge champion vs challenger, propose a winner; model lineage.
.PHONY: retrain retrain-propose lineage

RETRAIN_OUT ?= retrain
# Only from the command line: ENV is also a shell variable some systems set.
LINEAGE_ENV := $(if $(filter command line,$(origin ENV)),$(ENV))

retrain: venv ## Retrain on the newest data [CUTOFF=YYYY-MM-DD] [CHAMPION=dir]: retrain/decision.json + report.md
	$(BIN)/python -m pipeline.retrain run --out "$(RETRAIN_OUT)" $(if $(CUTOFF),--cutoff "$(CUTOFF)") \
		$(if $(CHAMPION),--champion "$(CHAMPION)")

retrain-propose: venv ## Push a promoted challenger to retrain/<data hash> and open a PR to staging (once per data)
	$(BIN)/python -m pipeline.retrain propose --out "$(RETRAIN_OUT)"

lineage: venv ## Which data, params and code produced a model [ENV=production | REV=<git rev>] (default: model/)
	$(BIN)/python -m pipeline.lineage show $(if $(LINEAGE_ENV),--env "$(LINEAGE_ENV)") $(if $(REV),--rev "$(REV)")
