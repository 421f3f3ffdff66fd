#!/usr/bin/env bash
# Checks every dashboards/*.json against Grafana's published schema types:
# each dashboard becomes a TypeScript object literal `satisfies Dashboard`
# (npm @grafana/schema), compiled by tsc with --strict, so an unknown or
# misspelt field, or a value of the wrong type, fails. A deliberately broken
# copy must fail too, or the check itself is broken.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${VIP_WATCHDOG_NPM:-/var/tmp/vip-watchdog-npm}
mkdir -p "$work/gen"
if ! cmp -s "$here/package.json" "$work/package.json" || [ ! -x "$work/node_modules/.bin/tsc" ]; then
    cp "$here/package.json" "$work/package.json"
    (cd "$work" && npm install --silent --no-audit --no-fund >/dev/null)
fi
rm -f "$work"/gen/*.ts
as_ts() { # as_ts JSON_FILE OUT_TS
    # Grafana's Dashboard type, with annotation queries typed as the
    # Prometheus data source's (the schema's generic DataQuery has no
    # `expr`): every other field is checked as Grafana publishes it.
    { echo "import type { AnnotationQuery, Dashboard, DataQuery } from '@grafana/schema';"
      echo "type PromQuery = DataQuery & { expr: string; legendFormat?: string; interval?: string };"
      echo "type Checked = Omit<Dashboard, 'annotations'> & { annotations?: { list?: Array<AnnotationQuery<PromQuery>> } };"
      # No newline before `satisfies`: it would end the statement.
      printf 'export const dashboard = %s satisfies Checked;\n' "$(cat "$1")"; } > "$2"
}
for f in "$here"/../*.json; do
    as_ts "$f" "$work/gen/$(basename "$f" .json).ts"
done
tsc() { (cd "$work" && node_modules/.bin/tsc --noEmit --strict --skipLibCheck --moduleResolution node --target es2022 "$@"); }
tsc "$work"/gen/*.ts
echo "dashboards match Grafana's schema: $(cd "$here/.." && ls ./*.json | tr '\n' ' ')"

# The check must be able to fail: a misspelt field in a copy.
first=$(ls "$here"/../*.json | head -n 1)
sed 's/"gridPos"/"gridPosition"/' "$first" > "$work/broken.json"
as_ts "$work/broken.json" "$work/gen/broken.ts.txt"
mv "$work/gen/broken.ts.txt" "$work/broken.ts"
if tsc "$work/broken.ts" >/dev/null 2>&1; then
    echo "error: a dashboard with a misspelt field passed the schema check" >&2
    exit 1
fi
echo "a misspelt field is caught"
