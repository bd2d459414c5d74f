#!/usr/bin/env bash
# Instructions per parse + re-encode (callgrind, 100 iterations after 10)
# of a 1,536-float embeddings body and a 1 KB chat, serde_json's default
# float parser against `float_roundtrip`; also prints how many of the
# 1,536 floats one parse changed. Needs valgrind.
set -euo pipefail
cd "$(dirname "$0")"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for f in default roundtrip; do
  if [ $f = default ]; then cargo build --release -q; else cargo build --release -q --features roundtrip; fi
  cp target/release/float_parse "$T/$f"
  "$T/$f" emb 0 2>&1 >/dev/null | grep changed | sed "s/^/$f: /"
done
count() { awk '/^(summary|totals):/ {t=$2} END {print t}' "$1"; }
echo "| body | default (k) | float_roundtrip (k) |"
echo "| --- | --- | --- |"
for w in emb chat; do
  row="| $w |"
  for f in default roundtrip; do
    for n in 10 110; do valgrind --tool=callgrind --callgrind-out-file="$T/$f.$w.$n" "$T/$f" $w $n >/dev/null 2>&1; done
    row="$row $(awk -v a="$(count "$T/$f.$w.10")" -v b="$(count "$T/$f.$w.110")" 'BEGIN {printf "%.2f", (b - a) / 100 / 1000}') |"
  done
  echo "$row"
done
