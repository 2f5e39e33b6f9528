#!/usr/bin/env bash
# The README's before/after table: the heuristic reader (the earlier default) against the shipped
# trained reader, each at its calibrated threshold, on the seeds gold set and on 500-question
# samples of SQuAD v1.1 and v2.0 dev part A (reader mode).
#   bash eval/before_after.sh [REPORTS_DIR]      (default reports/before-after)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-reports/before-after}"
squad="../shared/data/squad"
ragqa=".venv/bin/ragqa"
mkdir -p "$out"
"$ragqa" ingest --rebuild --quiet --index-dir "$out/seeds-index" seeds
for reader in heuristic transformers; do
  "$ragqa" eval --quiet --index-dir "$out/seeds-index" --gold eval/gold/seeds.jsonl \
    --reader "$reader" --out "$out/seeds-$reader"
  for v in 1.1 2.0; do
    "$ragqa" eval --quiet --squad "$squad/squad-v$v-dev-part-a.json" --mode reader --limit 500 \
      --reader "$reader" --out "$out/squad${v/./}-$reader"
  done
done
.venv/bin/python - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| evaluation | reader | n | EM | F1 | has-answer F1 | no-answer accuracy |")
print("|---|---|---:|---:|---:|---:|---:|")
for name, label in (("seeds", "seeds gold set"), ("squad11", "SQuAD v1.1 part A, 500"),
                    ("squad20", "SQuAD v2.0 part A, 500")):
    for reader in ("heuristic", "transformers"):
        m = json.loads((out / f"{name}-{reader}" / "metrics.json").read_text())
        no_ans = f"{m['no_ans_accuracy']:.1f}" if m["n_no_answer"] else "–"
        print(f"| {label} | {reader} | {m['n']} | {m['em']:.1f} | {m['f1']:.1f} | "
              f"{m['has_ans_f1']:.1f} | {no_ans} |")
PY
