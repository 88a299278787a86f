# The pull-request report: compare the pipeline outputs in the working tree with a base git revision.
.PHONY: report

BASE ?= origin/main
REPORT_DIR ?= report

report: venv ## Write $(REPORT_DIR)/report.md (+ PNGs) comparing with BASE=<git rev>; fails when the gate fails
	$(BIN)/python -m ops.report --base "$(BASE)" --out "$(REPORT_DIR)" \
		$(if $(REPORT_IMAGE_URL),--image-url "$(REPORT_IMAGE_URL)") $(if $(REPORT_PR),--pr "$(REPORT_PR)")
