# The GitHub workflows, job by job, under a real Actions runner (act, host mode, offline): tests/test_workflows_act.py
# with the stand-ins in tests/act/ (docs/ci-and-reports.md, "The workflows under a real runner").
# `make test` runs the same tests.
.PHONY: test-workflows

test-workflows: venv ## Run the workflows' jobs under act (pr-comment, deploy, monitor, retrain, ci) [K=name filter]
	$(BIN)/pytest tests/test_workflows_act.py tests/test_workflows.py -q $(if $(K),-k "$(K)")
