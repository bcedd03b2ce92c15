#!/usr/bin/env bash
# Refreshes the UI's vendored libraries (web/ui/vendor/) from the npm
# registry: ./vendor.sh <preact version> <htm version>. The UI has no build
# step; these files are served as they are. A third argument refreshes
# the API docs page's swagger-ui-dist too.
set -euo pipefail
preact=${1:?preact version, e.g. 10.29.8}
htm=${2:?htm version, e.g. 3.1.1}
swagger=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
vendor="$here/../ui/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund "preact@$preact" "htm@$htm" ${swagger:+"swagger-ui-dist@$swagger"} >/dev/null)
strip() { sed 's#//\# sourceMappingURL=.*##' "$1" >"$2"; }
strip "$work/node_modules/preact/dist/preact.module.js" "$vendor/preact.module.js"
strip "$work/node_modules/preact/hooks/dist/hooks.module.js" "$vendor/preact-hooks.module.js"
cp "$work/node_modules/htm/dist/htm.module.js" "$vendor/htm.module.js"
cp "$work/node_modules/preact/LICENSE" "$vendor/preact.LICENSE.txt"
cp "$work/node_modules/htm/LICENSE" "$vendor/htm.LICENSE.txt"
sed -i -E "s/^preact [0-9.]+ /preact $preact /; s/^htm    [0-9.]+ /htm    $htm /" "$vendor/VERSIONS.txt"
if [ -n "$swagger" ]; then
  dist="$work/node_modules/swagger-ui-dist"
  strip "$dist/swagger-ui-bundle.js" "$vendor/swagger-ui/swagger-ui-bundle.js"
  sed 's#/\*\# sourceMappingURL=.*\*/##' "$dist/swagger-ui.css" >"$vendor/swagger-ui/swagger-ui.css"
  cp "$dist/LICENSE" "$vendor/swagger-ui/LICENSE.txt"
  cp "$dist/NOTICE" "$vendor/swagger-ui/NOTICE.txt"
  sed -i -E "s/^swagger-ui-dist [0-9.]+ /swagger-ui-dist $swagger /" "$vendor/VERSIONS.txt"
fi
echo "vendored preact $preact and htm $htm; run the browser tests (cargo test -p boxoffice --test ui)"
