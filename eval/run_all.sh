#!/usr/bin/env bash
# Every evaluation in the README's results table, with the current default settings.
#   bash eval/run_all.sh [REPORTS_DIR]      (make eval; OPEN_LIMIT=N samples the open-mode run)
# Reports land in REPORTS_DIR (default reports/), one folder each; a summary table is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-reports}"
squad="../shared/data/squad"
ragqa=".venv/bin/ragqa"
seeds_index="$out/seeds-index"
mkdir -p "$out"
"$ragqa" ingest --rebuild --quiet --index-dir "$seeds_index" seeds
"$ragqa" eval --quiet --index-dir "$seeds_index" --gold eval/gold/seeds.jsonl --out "$out/seeds"
"$ragqa" eval --quiet --squad "$squad/squad-v1.1-dev-part-a.json" --mode reader --out "$out/squad11-reader"
"$ragqa" eval --quiet --squad "$squad/squad-v2.0-dev-part-a.json" --mode reader --out "$out/squad20-reader"
"$ragqa" eval --quiet --squad "$squad/squad-v1.1-dev-part-a.json" --mode open ${OPEN_LIMIT:+--limit "$OPEN_LIMIT"} --out "$out/squad11-open"
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| evaluation | n | EM | F1 | has-ans F1 | no-ans acc | recall@5 | p50 ms |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name in ("seeds", "squad11-reader", "squad20-reader", "squad11-open"):
    m = json.loads((out / name / "metrics.json").read_text())
    print(f"| {name} | {m['n']} | {m['em']:.1f} | {m['f1']:.1f} | {m['has_ans_f1']:.1f} | "
          f"{m['no_ans_accuracy']:.1f} | {m['recall_at_5']:.1f} | {m['latency_ms_p50']:.0f} |")
PY
