#!/usr/bin/env bash
# The two steps of pr-comment.yaml that handle the `pr-report` artifact of a CI run, as one script so the tests run
# exactly what the workflow runs (tests/test_workflows.py calls it directly, tests/test_workflows_act.py through
# the workflow):
#
#   pr-report.sh check     validate the artifact (untrusted data) and write number=<PR> to $GITHUB_OUTPUT
#   pr-report.sh publish   commit its PNGs to the report-assets branch under pr-<PR>/<head sha>/ and push
#
# Environment: REPORT_DIR (the downloaded artifact), REPOSITORY (owner/name), HEAD_SHA (the commit CI ran on),
# GH_TOKEN; `check` also GITHUB_OUTPUT; `publish` also PR_NUMBER, RUNNER_TEMP and GITHUB_SERVER_URL.
set -euo pipefail

check() {
  local pr head png
  pr="$(jq -r '.pull_request // empty' "$REPORT_DIR/verdict.json")"
  if ! [[ "$pr" =~ ^[0-9]{1,9}$ ]]; then
    echo "::error::verdict.json carries no pull request number"
    return 1
  fi
  head="$(gh api "repos/$REPOSITORY/pulls/$pr" --jq .head.sha)"
  if [[ "$head" != "$HEAD_SHA" ]]; then
    echo "::notice::PR #$pr has moved on from $HEAD_SHA: a newer run will comment"
    return 0
  fi
  test -s "$REPORT_DIR/comment.md"
  shopt -s nullglob
  for png in "$REPORT_DIR"/*.png; do
    [[ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" == 89504e470d0a1a0a ]] || {
      echo "::error::$png is not a PNG"
      return 1
    }
    (($(stat -c %s "$png") < 2000000)) || {
      echo "::error::$png is too large"
      return 1
    }
  done
  echo "number=$pr" >>"$GITHUB_OUTPUT"
}

publish() {
  local pngs assets auth remote dest attempt
  shopt -s nullglob
  pngs=("$REPORT_DIR"/*.png)
  if ((${#pngs[@]} == 0)); then
    echo "no images to publish"
    return 0
  fi
  assets="$RUNNER_TEMP/report-assets"
  rm -rf "$assets"
  git init -q "$assets" && cd "$assets"
  git config user.name "github-actions[bot]"
  git config user.email "41898282+github-actions[bot]@users.noreply.github.com"
  auth="AUTHORIZATION: basic $(printf 'x-access-token:%s' "$GH_TOKEN" | base64 -w0)"
  remote="$GITHUB_SERVER_URL/$REPOSITORY.git"
  dest="pr-$PR_NUMBER/$HEAD_SHA"
  # Runs for other PRs may push at the same time: on a rejected push, start again from the new tip.
  for attempt in 1 2 3; do
    if git -c http.extraHeader="$auth" fetch -q --depth=1 "$remote" report-assets; then
      git checkout -q --force -B report-assets FETCH_HEAD
    else
      git checkout -q --force --orphan "report-assets-$attempt" && git rm -rqf --ignore-unmatch .
    fi
    mkdir -p "$dest" && cp "${pngs[@]}" "$dest/"
    git add -A
    # A re-run, or a second CI run on the same head, finds its images already there: nothing to commit.
    if git diff --cached --quiet; then
      echo "the images of #$PR_NUMBER at $HEAD_SHA are already on report-assets"
      return 0
    fi
    git commit -q -m "Report images for #$PR_NUMBER at $HEAD_SHA"
    git -c http.extraHeader="$auth" push -q "$remote" HEAD:report-assets && return 0
    sleep $((attempt * 2))
  done
  return 1
}

case "${1:-}" in
check | publish) "$1" ;;
*)
  echo "usage: $0 check|publish" >&2
  exit 2
  ;;
esac
