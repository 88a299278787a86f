# Linting: every pre-commit hook over every file (.pre-commit-config.yaml; local hooks only, so it works offline).
.PHONY: lint

lint: venv ## Run the pre-commit hooks on all files: ruff, file checks, actionlint, zizmor, schemas, hadolint
	$(BIN)/pre-commit run --all-files --show-diff-on-failure
