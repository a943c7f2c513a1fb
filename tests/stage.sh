#!/usr/bin/env bash
# Wall-clock time of each stage of `make test`, summed up at its end.
#
#   tests/stage.sh run NAME -- COMMAND...
#       Run COMMAND (its exit status is this script's). Under `make test` (WLCG_SOC_STAGES set)
#       it is recorded as a step of stage NAME (NAME:STEP for one of several steps, e.g.
#       lint:ruff); run alone (`make unit`), it only runs COMMAND.
#   tests/stage.sh all MAKE [ARGS...]
#       Run MAKE ARGS with the record in a new file, then print the time of each stage, which
#       one failed and which did not run, and exit with MAKE's status. The record is kept as
#       build/stages.txt.
#   tests/stage.sh summary FILE
#       Print the summary of a record.
#
# A record line is "NAME start EPOCH" when a step starts, then "NAME SECONDS STATUS" (STATUS
# ok or exit code) when it ends; a step with no end was interrupted.
set -euo pipefail

# The stages of `make test`, in the order they run.
STAGES=(venv deps hosts build lint sanity unit importer molecule)

summary() {
  local record=$1 now=$EPOCHREALTIME
  awk -v now="$now" -v order="${STAGES[*]}" '
    function fmt(s) { return sprintf("%6.0fs", s) }
    $2 == "start" { started[$1] = $3; if (!($1 in seen)) { seen[$1] = 1; steps[++n] = $1 }; next }
    { took[$1] = $2; status[$1] = $3; delete started[$1] }
    END {
      split(order, stages, " ")
      print ""
      print "==== make test: wall-clock time per stage"
      total = 0; passed = 0; failed = 0
      for (i = 1; i in stages; i++) {
        stage = stages[i]; secs = 0; state = ""; detail = ""; ran = 0
        for (j = 1; j <= n; j++) {
          step = steps[j]; base = step; sub(/:.*/, "", base)
          if (base != stage) continue
          ran = 1
          if (step in started) { t = now - started[step]; s = "interrupted" }
          else { t = took[step]; s = (status[step] == "ok") ? "" : "exit " status[step] }
          secs += t
          if (s != "" && state == "") state = step ": " s
          if (step != stage) detail = detail sprintf("%s%s %.0fs", (detail == "" ? "" : ", "), substr(step, length(stage) + 2), t)
        }
        total += secs
        if (!ran) line = sprintf("  %-9s %7s  %s", stage, "-", (stage == "venv" ? "up to date" : "not run"))
        else {
          line = sprintf("  %-9s %s  %s", stage, fmt(secs), (state == "" ? "ok" : "FAILED (" state ")"))
          if (state == "") passed++; else failed++
          if (detail != "") line = line "  [" detail "]"
        }
        print line
      }
      printf "  %-9s %s\n", "total", fmt(total)
      printf "stages: %d passed, %d failed\n", passed, failed
    }' "$record"
}

case "${1:-}" in
  run)
    name=$2; shift 2
    [ "${1:-}" = "--" ] && shift
    if [ -z "${WLCG_SOC_STAGES:-}" ]; then exec "$@"; fi
    start=$EPOCHREALTIME
    echo "$name start $start" >>"$WLCG_SOC_STAGES"
    rc=0
    "$@" || rc=$?
    awk -v a="$start" -v b="$EPOCHREALTIME" -v n="$name" -v rc="$rc" \
      'BEGIN { printf "%s %.1f %s\n", n, b - a, (rc == 0 ? "ok" : rc) }' >>"$WLCG_SOC_STAGES"
    exit "$rc"
    ;;
  all)
    shift
    WLCG_SOC_STAGES=$(mktemp)
    export WLCG_SOC_STAGES
    trap ':' INT TERM  # interrupted: still print what ran (MAKE gets the signal itself)
    rc=0
    "$@" || rc=$?
    summary "$WLCG_SOC_STAGES"
    mkdir -p build && cp "$WLCG_SOC_STAGES" build/stages.txt && rm -f "$WLCG_SOC_STAGES"
    exit "$rc"
    ;;
  summary)
    summary "$2"
    ;;
  *)
    echo "usage: $0 run NAME -- COMMAND... | all MAKE [ARGS...] | summary FILE" >&2
    exit 2
    ;;
esac
