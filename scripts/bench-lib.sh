#!/usr/bin/env bash
# Helpers shared by scripts/bench.sh and scripts/bench-pg.sh (sourced, not run): table rows,
# decimal arithmetic, timing with peak RSS, the webhook sink, and the benchmark project.
# The sourcing script sets WORK, SINK_BIN and defines log().
# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

# A markdown table row: row NAME VALUE UNIT NOTES
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "${4:-}"; }

# Arithmetic on decimals without bc: awk is POSIX.
per_second() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", n / s; else print "inf" }'; }
# median_of V...: the middle value (the lower middle of an even count); max_of V...: the largest.
median_of() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
max_of() { printf '%s\n' "$@" | sort -g | tail -n1; }
# runs_note V...: "median of 3: 1.2 1.3 1.5" (empty for a single run).
runs_note() { if (($# > 1)); then printf 'median of %d runs (%s); ' "$#" "$*"; fi; }
kb_to_mb() { if [[ $1 == n/a ]]; then echo n/a; else awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; fi; }

GNU_TIME=""
if [[ -z ${BENCH_NO_GNU_TIME:-} && -x /usr/bin/time ]] && /usr/bin/time -f '%e' true 2>/dev/null; then
    GNU_TIME=/usr/bin/time
fi

# measure STDOUT_FILE CMD [ARGS...]
# Runs CMD with stdout to STDOUT_FILE (stderr passes through) and sets LAST_WALL (seconds) and
# LAST_RSS_KB (peak resident set, KiB, or n/a). Fails the script if CMD fails.
measure() {
    local out=$1
    shift
    if [[ -n $GNU_TIME ]]; then
        local tf=$WORK/.time.$$
        "$GNU_TIME" -f '%e %M' -o "$tf" "$@" >"$out"
        read -r LAST_WALL LAST_RSS_KB <"$tf"
        rm -f "$tf"
        return
    fi
    local t0 t1 pid hwm peak=0 status=0
    t0=$(date +%s.%N)
    "$@" >"$out" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        [[ -n $hwm && $hwm -gt $peak ]] && peak=$hwm
        sleep 0.02
    done
    wait "$pid" || status=$?
    t1=$(date +%s.%N)
    ((status == 0)) || { log "command failed ($status): $*"; exit "$status"; }
    LAST_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    if [[ -d /proc/self ]]; then LAST_RSS_KB=$peak; else LAST_RSS_KB=n/a; fi
}

# json_num FILE KEY: a top-level number from the sink's pretty-printed stats (no jq needed).
json_num() { sed -n "s/^  \"$2\": \([0-9.]*\),\{0,1\}\$/\1/p" "$1" | head -n1; }

# start_sink [webhook_sink flags...]: starts the sink, sets SINK_PID, SINK_ADDR, SINK_STATS.
# e.g. `start_sink --delay-ms 20` (slow provider) or `start_sink --fail-every 100` (retries).
SINK_N=0
# shellcheck disable=SC2120 # flags are optional
start_sink() {
    SINK_N=$((SINK_N + 1))
    SINK_STATS=$WORK/sink-$SINK_N.json
    local out=$WORK/sink-$SINK_N.out
    "$SINK_BIN" --listen 127.0.0.1:0 --stats "$SINK_STATS" "$@" >"$out" 2>"$WORK/sink-$SINK_N.err" &
    SINK_PID=$!
    for _ in $(seq 1 500); do
        if [[ -s $out ]] && SINK_ADDR=$(sed -n '1s/^listening //p' "$out") && [[ -n $SINK_ADDR ]]; then
            log "sink $SINK_N (pid $SINK_PID) listening on $SINK_ADDR"
            return 0
        fi
        kill -0 "$SINK_PID" 2>/dev/null || { cat "$WORK/sink-$SINK_N.err" >&2; exit 1; }
        sleep 0.01
    done
    log "sink did not start within 5 s"
    exit 1
}

# stop_sink: SIGTERM, wait, and check the stats file exists.
stop_sink() {
    kill -TERM "$SINK_PID"
    wait "$SINK_PID" || { log "sink exited with $?"; exit 1; }
    SINK_PID=""
    cat "$WORK/sink-$SINK_N.err" >&2
    [[ -s $SINK_STATS ]] || { log "sink wrote no stats to $SINK_STATS"; exit 1; }
}

# http_post ADDR PATH KEY BODY: one request over bash's /dev/tcp (no curl needed); prints status.
http_post() {
    local host=${1%:*} port=${1##*:} status
    exec 3<>"/dev/tcp/$host/$port"
    printf 'POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nIdempotency-Key: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$2" "$1" "$3" "${#4}" "$4" >&3
    IFS= read -r status <&3
    exec 3<&- 3>&-
    echo "${status%$'\r'}"
}


# make_project DIR AUDIENCE CHANNEL_YAML [SCHEDULE_EXTRA_YAML]: a project per SPEC §2 with one
# campaign `bench` whose template uses 4 variables (3 recipient fields and a campaign var).
make_project() {
    local dir=$1 audience=$2 channel=$3 extra=${4:-}
    mkdir -p "$dir/campaigns" "$dir/templates"
    cat >"$dir/disparo.yaml" <<EOF
timezone: America/Sao_Paulo
channels:
  bench: $channel
EOF
    cat >"$dir/campaigns/bench.yaml" <<EOF
name: bench
channel: bench
template: bench
audience: $audience
vars: { coupon: BF26 }
schedule:
  timezone: America/Sao_Paulo
$extra
EOF
    cat >"$dir/templates/bench.hbs" <<'EOF'
Olá {{first_name}}! Use o cupom {{coupon}} em {{city}}: você tem {{points}} pontos.
EOF
}

