#!/usr/bin/env bash
# Install the `baton` command-line client into its own virtualenv ($RUNNER_TEMP/baton-cli), once per
# job, and put it on PATH for the job's later steps. Which Baton: BATON_VERSION (from the package
# index), else PIP_SPEC (anything pip installs), else the repository this action comes from.
set -euo pipefail
venv="${RUNNER_TEMP:-/tmp}/baton-cli"
if [ ! -x "$venv/bin/baton" ]; then
  if [ -n "${BATON_VERSION:-}" ]; then
    spec="baton==${BATON_VERSION}"
  elif [ -n "${PIP_SPEC:-}" ]; then
    spec="${PIP_SPEC}"
  else
    spec="$(cd "${GITHUB_ACTION_PATH}/../../.." && pwd)"
  fi
  python3 -m venv "$venv"
  # The client needs only the standard library: none of the server's dependencies (--no-deps).
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$spec"
fi
"$venv/bin/baton" --version
if [ -n "${GITHUB_PATH:-}" ]; then
  echo "$venv/bin" >> "$GITHUB_PATH"
fi
