# Make this repository your project from one data file (src/ops/adopt; docs/data.md, "Adopt your data").
.PHONY: adopt

adopt: venv ## Your data as the project's: make adopt DATA=f.csv ID=col TIME=col LABEL=col [NAME= POSITIVE= DROP=a,b FORCE=1]
	@test -n "$(DATA)" -a -n "$(ID)" -a -n "$(TIME)" -a -n "$(LABEL)" || { \
		echo "error: make adopt needs DATA=<file or glob> ID=<column> TIME=<column> LABEL=<column>" >&2; exit 2; }
	$(BIN)/python -m ops.adopt --data "$(DATA)" --id "$(ID)" --time "$(TIME)" --label "$(LABEL)" \
		--name "$(NAME)" --positive "$(POSITIVE)" --drop "$(DROP)" $(if $(FORCE),--force)
