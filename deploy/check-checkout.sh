#!/usr/bin/env bash
# Pull step of every process-pool deployment (prefect.yaml): refuse to run flow code from another
# commit than the one the deployment was made from. A process worker runs the checkout on its disk;
# after a `git pull` without `prefect deploy`, a run would claim one version and run another.
# Local edits to tracked files only warn (a developer's tree; the e2e tests run from one).
set -euo pipefail
deployed="${1:?usage: check-checkout.sh DEPLOYED_COMMIT}"
head="$(git rev-parse HEAD)"
if [ "$head" != "$deployed" ]; then
    echo "$(pwd) is at commit $head, the deployment at $deployed: check that commit out," \
         "or run 'prefect --no-prompt deploy --all' again from this checkout" >&2
    exit 1
fi
if ! git diff --quiet HEAD --; then
    echo "warning: $(pwd) has local changes to tracked files; this run is not exactly commit $deployed" >&2
fi
