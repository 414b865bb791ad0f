#!/usr/bin/env bash
# disparo benchmarks (issue 6).
#
# What it measures (release build; ONE markdown table on stdout, logs on stderr):
#   generate  wall time of examples/gen_audience for the audiences (CSV, seed 42, 61 zones)
#   plan      `disparo plan` of 100k and 1M recipients into a fresh database (WAL,
#             synchronous=FULL as the store opens it): wall, rows/s, peak RSS. The campaign has
#             a recipient-local `at`, quiet hours 21:00-08:00 and one template with 4 variables.
#   preview   `disparo preview --limit 0` of the 1M campaign (forecast only, no database)
#   dispatch  `disparo run --once` of 200k due messages through a `webhook` channel into
#             examples/webhook_sink, no rate limit: messages/s; duplicates in the sink must be 0
#   rate      the same with `rate: 500/s` on the channel, 30k messages (~60 s): the sink's
#             maximum requests in any sliding 1 s window (must be <= 500) and the mean rate
# and the ratios of issue 18, each against a baseline measured side by side in the same run
# (scripts/bench-ratios.sh):
#   plan/sqlite3   `plan` of 1M recipients (30 zones) into a database holding another campaign,
#                  over the sqlite3 CLI storing the same rows (CSV import + one INSERT..SELECT
#                  with printf and json_object; unique identity and (state, due_at) indexes):
#                  target <= 1.0x, peak RSS <= 100 MB
#   recurring      a weekly cron over the 30-day horizon, 100k recipients in 30 zones, over the
#                  one-shot plan of as many messages: target <= 2x
#   plan 10M       peak RSS of one plan of 10M recipients: target <= 150 MB
#   nginx          `run --once` of 200k messages into nginx (one worker, `return 200 '{}'`) over
#                  wrk's rate with the same body and 64 connections: target >= 0.7x
# and the machine (lscpu model, cores). Criterion micro-benchmarks are separate:
# `cargo bench --bench plan` (fast-path vs Handlebars rendering, per-recipient plan work).
#
# Peak RSS: GNU time (`/usr/bin/time -f '%e %M'`) when present, otherwise a fallback that polls
# VmHWM in /proc/PID/status every 20 ms (Linux only; without /proc the RSS column says n/a).
#
# Usage:  scripts/bench.sh [--quick] [--keep] [--ratios]
#   --quick   small sizes (100k plan/preview, 20k dispatch, 5k messages at 500/s, ratios on
#             100k/20k/1M/20k), one run each (two for the ratios)
#   --ratios  only the ratio benchmarks
#   --keep    keep the work directory (audiences, databases, sink stats, logs); its path is printed
# Env:      CARGO_TARGET_DIR (default ./target), BENCH_DIR (work dir; default a new mktemp -d),
#           BENCH_RATIOS (which ratio benchmarks: any of "sqlite recurring rss nginx"; default
#           all), BENCH_SEED (default 42), BENCH_NO_GNU_TIME=1 forces the /proc fallback,
#           BENCH_NOW (the --now of every command; default 2026-11-26T12:00:00Z),
#           BENCH_REPEAT (runs of each plan, preview and dispatch step; default 3, 1 with
#           --quick): the table shows the median and lists every run, since a shared VM's
#           speed drifts by tens of percent within minutes.
set -euo pipefail
# `run --now` is a simulation here (the bench pins the clock): allowed by DISPARO_SIMULATE.
export DISPARO_SIMULATE=1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
GEN=$BIN/examples/gen_audience
SINK_BIN=$BIN/examples/webhook_sink
DISPARO=$BIN/disparo
SEED=${BENCH_SEED:-42}
NOW=${BENCH_NOW:-2026-11-26T12:00:00Z}

QUICK=0
KEEP=0
RATIOS_ONLY=0
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        --ratios) RATIOS_ONLY=1 ;;
        --keep) KEEP=1 ;;
        -h | --help)
            sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bench.sh: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

REPEAT=${BENCH_REPEAT:-$((QUICK ? 1 : 3))}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_REPEAT must be a positive number" >&2; exit 2; }

WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/disparo-bench.XXXXXX")}
mkdir -p "$WORK"
SINK_PID=""

cleanup() {
    stop_nginx
    if [[ -n $SINK_PID ]] && kill -0 "$SINK_PID" 2>/dev/null; then
        kill -TERM "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
    fi
    if [[ $KEEP == 1 || -n ${BENCH_DIR:-} ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# want NAME: whether BENCH_RATIOS selects the ratio benchmark NAME (all when unset).
want() { [[ -z ${BENCH_RATIOS:-} || " $BENCH_RATIOS " == *" $1 "* ]]; }

log() { printf '[bench] %s\n' "$*" >&2; }

# Helpers: scripts/bench-lib.sh
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
# shellcheck source=scripts/bench-ratios.sh
source "$ROOT/scripts/bench-ratios.sh"

# The plan campaign: recipient-local 10:00 the next day, outside quiet hours.
PLAN_SCHEDULE='  at: 2026-11-27T10:00
  quiet_hours: { start: "21:00", end: "08:00" }'

# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

build() {
    log "building release (examples and binaries) into $TARGET_DIR"
    (cd "$ROOT" && cargo build --release --examples --bins >&2)
}

# bench_generate ROWS NAME: generates $WORK/NAME.csv and prints its table row.
bench_generate() {
    local rows=$1 name=$2
    measure "$WORK/$name.csv" "$GEN" --rows "$rows" --seed "$SEED"
    local bytes lines
    bytes=$(wc -c <"$WORK/$name.csv")
    lines=$(($(wc -l <"$WORK/$name.csv") - 1))
    [[ $lines == "$rows" ]] || { log "expected $rows rows, got $lines"; exit 1; }
    row "generate $name rows" "$LAST_WALL" "s" \
        "$(per_second "$rows" "$LAST_WALL") rows/s, $((bytes / 1048576)) MiB, peak RSS $(kb_to_mb "$LAST_RSS_KB") MB"
}

bench_sink_smoke() {
    start_sink
    local s1 s2 s3
    s1=$(http_post "$SINK_ADDR" /send smoke-1 '{"n":1}')
    s2=$(http_post "$SINK_ADDR" /send smoke-2 '{"n":2}')
    s3=$(http_post "$SINK_ADDR" /send smoke-1 '{"n":1}')
    stop_sink
    local total distinct dups
    total=$(json_num "$SINK_STATS" total)
    distinct=$(json_num "$SINK_STATS" distinct_keys)
    dups=$(json_num "$SINK_STATS" duplicates)
    if [[ "$s1 $s2 $s3" != "HTTP/1.1 200 OK HTTP/1.1 200 OK HTTP/1.1 200 OK" || $total != 3 || $distinct != 2 || $dups != 1 ]]; then
        log "sink smoke failed: statuses [$s1|$s2|$s3] total=$total distinct=$distinct dups=$dups"
        exit 1
    fi
    row "sink smoke (start, 3 POSTs, SIGTERM, stats)" "ok" "-" "total=$total distinct_keys=$distinct duplicates=$dups"
}

# bench_plan ROWS NAME: `disparo plan` of $WORK/NAME.csv into a fresh database.
bench_plan() {
    local rows=$1 name=$2
    local dir=$WORK/plan-$name
    make_project "$dir" "$WORK/$name.csv" "{ type: console }" "$PLAN_SCHEDULE"
    local walls=() rss=()
    for _ in $(seq 1 "$REPEAT"); do
        rm -f "$dir/disparo.db" "$dir/disparo.db-wal" "$dir/disparo.db-shm"
        measure "$dir/plan.out" env -C "$dir" "$DISPARO" -q --db "$dir/disparo.db" --now "$NOW" \
            --format json plan bench
        grep -q "\"inserted\":$rows" "$dir/plan.out" || { log "plan $name: unexpected result: $(cat "$dir/plan.out")"; exit 1; }
        walls+=("$LAST_WALL")
        rss+=("$LAST_RSS_KB")
    done
    local wall
    wall=$(median_of "${walls[@]}")
    row "plan $name recipients" "$wall" "s" \
        "$(runs_note "${walls[@]}")$(per_second "$rows" "$wall") rows/s, peak RSS $(kb_to_mb "$(max_of "${rss[@]}")") MB, db $(($(stat -c %s "$dir/disparo.db") / 1048576)) MiB"
}

# bench_preview ROWS NAME: `disparo preview --limit 0` (forecast over everyone, no database).
bench_preview() {
    local rows=$1 name=$2
    local dir=$WORK/preview-$name
    make_project "$dir" "$WORK/$name.csv" "{ type: console }" "$PLAN_SCHEDULE"
    local walls=() rss=()
    for _ in $(seq 1 "$REPEAT"); do
        measure /dev/null env -C "$dir" "$DISPARO" --db "$dir/none.db" --now "$NOW" \
            preview bench --limit 0 2>"$dir/preview.err"
        [[ ! -e $dir/none.db ]] || { log "preview created a database"; exit 1; }
        walls+=("$LAST_WALL")
        rss+=("$LAST_RSS_KB")
    done
    local wall
    wall=$(median_of "${walls[@]}")
    row "preview forecast $name recipients" "$wall" "s" \
        "$(runs_note "${walls[@]}")$(per_second "$rows" "$wall") rows/s, peak RSS $(kb_to_mb "$(max_of "${rss[@]}")") MB"
}

# run_webhook ROWS NAME CHANNEL_EXTRA: plan ROWS due-now messages on a webhook channel into a
# fresh sink, then time `run --once`. Sets RUN_WALL, RUN_RSS_KB and SINK_STATS.
run_webhook() {
    local rows=$1 name=$2 extra=$3
    [[ -s $WORK/$name.csv ]] || "$GEN" --rows "$rows" --seed "$SEED" >"$WORK/$name.csv"
    start_sink
    local dir=$WORK/run-$name
    make_project "$dir" "$WORK/$name.csv" "{ type: webhook, url: \"http://$SINK_ADDR/hook\"$extra }"
    rm -f "$dir/disparo.db" "$dir/disparo.db-wal" "$dir/disparo.db-shm"
    (cd "$dir" && "$DISPARO" -q --db "$dir/disparo.db" --now "$NOW" plan bench)
    measure "$dir/run.out" env -C "$dir" "$DISPARO" --db "$dir/disparo.db" --now "$NOW" run --once \
        2>"$dir/run.err"
    RUN_WALL=$LAST_WALL
    RUN_RSS_KB=$LAST_RSS_KB
    stop_sink
    local total dups
    total=$(json_num "$SINK_STATS" total)
    dups=$(json_num "$SINK_STATS" duplicates)
    [[ $total == "$rows" && $dups == 0 ]] || { log "run $name: sink saw $total requests ($dups duplicates), expected $rows"; tail -3 "$dir/run.err" >&2; exit 1; }
}

# bench_dispatch ROWS NAME: no rate limit.
bench_dispatch() {
    local rows=$1 name=$2
    local rates=() walls=() rss=()
    for _ in $(seq 1 "$REPEAT"); do
        run_webhook "$rows" "$name" ""
        rates+=("$(per_second "$rows" "$RUN_WALL")")
        walls+=("$RUN_WALL")
        rss+=("$RUN_RSS_KB")
    done
    row "dispatch $name messages via webhook, no limit" "$(median_of "${rates[@]}")" "msg/s" \
        "$(runs_note "${rates[@]}")wall $(median_of "${walls[@]}") s, peak RSS $(kb_to_mb "$(max_of "${rss[@]}")") MB, sink duplicates 0; every state change durable (synchronous=FULL)"
}

# bench_rate ROWS: `rate: 500/s` on the channel.
bench_rate() {
    local limit=500 rows=$1
    run_webhook "$rows" "rate-$rows" ", rate: ${limit}/s"
    local max mean verdict
    max=$(json_num "$SINK_STATS" max_1s_window)
    mean=$(json_num "$SINK_STATS" mean_rps)
    if ((max > limit)); then
        verdict="OVER LIMIT"
    elif awk -v m="$mean" -v l="$limit" 'BEGIN { exit !(m >= 0.98 * l && m <= l) }'; then
        verdict="ok, mean within 2%"
    else
        verdict="mean more than 2% under the limit"
    fi
    row "rate ${limit}/s, $rows messages" "$max" "max req in any 1 s" \
        "mean $(printf '%.1f' "$mean")/s over the sink's active span; $verdict; wall $RUN_WALL s"
}

# ---------------------------------------------------------------------------------------------

main() {
    build
    [[ -x $GEN && -x $SINK_BIN && -x $DISPARO ]] || { log "binaries not built under $BIN"; exit 1; }
    log "work directory: $WORK; peak RSS via ${GNU_TIME:-/proc VmHWM polling}"
    bench_sink_smoke >/dev/null
    local model
    model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)
    echo "| benchmark | value | unit | notes |"
    echo "|---|---|---|---|"
    if ((!RATIOS_ONLY)); then
        bench_generate 100000 100k
        ((QUICK)) || bench_generate 1000000 1M
        bench_plan 100000 100k
        ((QUICK)) || bench_plan 1000000 1M
        if ((QUICK)); then bench_preview 100000 100k; else bench_preview 1000000 1M; fi
        if ((QUICK)); then bench_dispatch 20000 20k; else bench_dispatch 200000 200k; fi
        if ((QUICK)); then bench_rate 5000; else bench_rate 30000; fi
    fi
    if ((QUICK)); then
        want sqlite && bench_plan_vs_sqlite 100000 100k
        want recurring && bench_recurring 20000
        want rss && bench_plan_rss 1000000 1M 150
        want nginx && bench_nginx 20000
    else
        want sqlite && bench_plan_vs_sqlite 1000000 1M
        want recurring && bench_recurring 100000
        want nginx && bench_nginx 200000
        want rss && bench_plan_rss 10000000 10M 150
    fi
    row "machine" "$(nproc)" "cores" "${model:-unknown CPU}, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo 2>/dev/null) RAM, load average at end $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null); $(date -u +%Y-%m-%dT%H:%MZ)"
}

main
