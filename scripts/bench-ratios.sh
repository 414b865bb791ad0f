#!/usr/bin/env bash
# The ratio benchmarks of scripts/bench.sh (issue 18), sourced by it, not run: each target is a
# ratio to a baseline measured side by side in the same run, since this VM's absolute speed
# drifts by tens of percent within minutes.
#
#   bench_plan_vs_sqlite ROWS NAME   `plan` against the sqlite3 CLI storing the same rows
#   bench_recurring ROWS             a weekly cron over 30 days against the one-shot plan of as
#                                    many messages
#   bench_plan_rss ROWS NAME LIMIT   one `plan` of a large audience: peak RSS against LIMIT MB
#   bench_nginx ROWS                 `run` into nginx against wrk into the same nginx
#
# The sourcing script sets WORK, DISPARO, GEN, SEED, NOW, REPEAT and defines log(), measure(),
# row(), make_project() (scripts/bench-lib.sh).

# The zones of the issue's audiences: the 30 heaviest of gen_audience's 61.
RATIO_ZONES=30

# audience ROWS NAME: $WORK/NAME.csv with ROWS recipients in RATIO_ZONES zones (made once).
audience() {
    local rows=$1 name=$2
    [[ -s $WORK/$name.csv ]] || "$GEN" --rows "$rows" --seed "$SEED" --zones "$RATIO_ZONES" >"$WORK/$name.csv"
    AUDIENCE=$WORK/$name.csv
}

# fresh_db DIR SEED_DB: DIR/disparo.db as a copy of SEED_DB (no WAL left beside it).
fresh_db() {
    rm -f "$1/disparo.db" "$1/disparo.db-wal" "$1/disparo.db-shm"
    cp "$2" "$1/disparo.db"
}

# ratio A B: A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
# best_of V...: the smallest.
best_of() { printf '%s\n' "$@" | sort -g | head -n1; }
# verdict RATIO OP LIMIT: "met" or "missed", e.g. verdict 0.8 '<=' 1.0.
verdict() {
    if awk -v r="$1" -v l="$3" -v op="$2" 'BEGIN { exit !(op == "<=" ? r <= l : r >= l) }'; then
        echo "met"
    else
        echo "MISSED"
    fi
}

# The baseline's schema: the message as one row (what `plan` stores in `messages` and `queue`),
# with the unique identity index and the due index the issue names.
SQLITE_BASELINE_SCHEMA="
CREATE TABLE IF NOT EXISTS plain_messages (
    id          INTEGER PRIMARY KEY,
    campaign    TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    occurrence  INTEGER NOT NULL,
    address     TEXT NOT NULL,
    zone        TEXT NOT NULL,
    locale      TEXT,
    state       TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    planned_at  INTEGER NOT NULL,
    content     TEXT NOT NULL,
    vars        TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS plain_identity ON plain_messages (campaign, recipient, occurrence);
CREATE INDEX IF NOT EXISTS plain_due ON plain_messages (state, due_at);"

# sqlite_baseline_sql CSV CAMPAIGN: the script the sqlite3 CLI runs: durable like the store
# (WAL, synchronous=FULL, 16 KiB pages, the plan's 16 MiB cache), the audience imported into a
# temporary table, then one INSERT..SELECT building the body with printf and the vars with
# json_object. The due time differs by zone, as the plan's does, so the due index is not
# filled in order.
sqlite_baseline_sql() {
    local csv=$1 campaign=$2
    cat <<EOF
PRAGMA page_size = 16384;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA cache_size = -16384;
$SQLITE_BASELINE_SCHEMA
.import --csv --schema temp $csv audience
BEGIN;
INSERT INTO plain_messages (campaign, recipient, occurrence, address, zone, locale, state, due_at, planned_at, content, vars)
SELECT '$campaign', id, 0, phone, timezone, locale, 'pending',
       1795780800 + (length(timezone) * 3607 + unicode(timezone || 'x') * 611 + unicode(substr(timezone || 'xyz', -3)) * 97) % 43200,
       1795780800,
       json_object('body', printf('Olá %s! Use o cupom %s em %s: você tem %s pontos.' || char(10), first_name, 'BF26', city, points)),
       json_object('id', id, 'first_name', first_name, 'last_name', last_name, 'phone', phone,
                   'email', email, 'timezone', timezone, 'locale', locale, 'city', city,
                   'plan', plan, 'points', points, 'signup_date', signup_date, 'coupon', 'BF26')
FROM temp.audience;
COMMIT;
EOF
}

# bench_plan_vs_sqlite ROWS NAME: `plan` of ROWS recipients (30 zones, quiet hours, 4-variable
# template) into a database already holding another campaign of 100k messages, against the
# sqlite3 CLI storing the same rows into a database holding the same 100k rows its way.
# Alternating runs, best of BENCH_REPEAT (at least 2) each.
bench_plan_vs_sqlite() {
    local rows=$1 name=$2
    command -v sqlite3 >/dev/null || install_debian sqlite3
    audience "$rows" "$name-z30"
    local csv=$AUDIENCE
    audience 100000 other-z30
    local other=$AUDIENCE
    local dir=$WORK/ratio-plan-$name
    make_project "$dir" "$csv" "{ type: console }" "$PLAN_SCHEDULE"
    # The other campaign: the same project, another name and audience.
    sed -e 's/^name: bench/name: other/' -e "s|^audience: .*|audience: $other|" \
        "$dir/campaigns/bench.yaml" >"$dir/campaigns/other.yaml"
    rm -f "$dir/seed.db"*
    env -C "$dir" "$DISPARO" -q --db "$dir/seed.db" --now "$NOW" plan other >/dev/null
    sqlite3 "$dir/seed.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
    rm -f "$dir/plain-seed.db"*
    sqlite_baseline_sql "$other" other >"$dir/plain-seed.sql"
    sqlite3 "$dir/plain-seed.db" ".read $dir/plain-seed.sql" >/dev/null
    sqlite3 "$dir/plain-seed.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
    sqlite_baseline_sql "$csv" bench >"$dir/plain.sql"
    local plan_walls=() cli_walls=() plan_rss=() n
    local runs=$((REPEAT < 2 ? 2 : REPEAT))
    for n in $(seq 1 "$runs"); do
        fresh_db "$dir" "$dir/seed.db"
        measure "$dir/plan.out" env -C "$dir" "$DISPARO" -q --db "$dir/disparo.db" --now "$NOW" \
            --format json plan bench
        grep -q "\"inserted\":$rows" "$dir/plan.out" || { log "plan $name: unexpected result: $(cat "$dir/plan.out")"; exit 1; }
        plan_walls+=("$LAST_WALL")
        plan_rss+=("$LAST_RSS_KB")
        rm -f "$dir/plain.db" "$dir/plain.db-wal" "$dir/plain.db-shm"
        cp "$dir/plain-seed.db" "$dir/plain.db"
        measure /dev/null sqlite3 "$dir/plain.db" ".read $dir/plain.sql"
        cli_walls+=("$LAST_WALL")
        log "plan vs sqlite3 run $n: plan ${plan_walls[-1]} s, sqlite3 ${cli_walls[-1]} s"
    done
    local stored
    stored=$(sqlite3 "$dir/plain.db" "SELECT count(*) FROM plain_messages WHERE campaign = 'bench'")
    [[ $stored == "$rows" ]] || { log "sqlite3 baseline stored $stored rows, expected $rows"; exit 1; }
    same_content_check "$dir"
    local best_plan best_cli r
    best_plan=$(best_of "${plan_walls[@]}")
    best_cli=$(best_of "${cli_walls[@]}")
    r=$(ratio "$best_plan" "$best_cli")
    row "plan $name recipients (30 zones) / sqlite3 CLI storing the same rows" "${r}x" "ratio" \
        "target <= 1.0x: $(verdict "$r" '<=' 1.0); best of $runs alternating: plan $best_plan s (runs ${plan_walls[*]}), sqlite3 $best_cli s (runs ${cli_walls[*]}); plan peak RSS $(kb_to_mb "$(max_of "${plan_rss[@]}")") MB (target <= 100: $(verdict "$(kb_to_mb "$(max_of "${plan_rss[@]}")")" '<=' 100)); both into a database holding another campaign of 100k"
}

# same_content_check DIR: the baseline stored the body and the variables `plan` stored, for
# the first recipient (so the comparison is of the same rows, not of an easier job).
same_content_check() {
    local dir=$1 ours theirs
    ours=$(sqlite3 "$dir/disparo.db" "SELECT json_extract(m.content, '\$.body') FROM messages m JOIN campaigns c ON c.id = m.campaign_id WHERE c.name = 'bench' ORDER BY m.recipient LIMIT 1")
    theirs=$(sqlite3 "$dir/plain.db" "SELECT json_extract(content, '\$.body') FROM plain_messages WHERE campaign = 'bench' ORDER BY recipient LIMIT 1")
    [[ -n $ours && $ours == "$theirs" ]] || { log "baseline body differs from plan's: [$theirs] vs [$ours]"; exit 1; }
    ours=$(sqlite3 "$dir/disparo.db" "SELECT length(m.vars) FROM messages m JOIN campaigns c ON c.id = m.campaign_id WHERE c.name = 'bench' ORDER BY m.recipient LIMIT 1")
    theirs=$(sqlite3 "$dir/plain.db" "SELECT length(vars) FROM plain_messages WHERE campaign = 'bench' ORDER BY recipient LIMIT 1")
    log "first recipient's vars: plan ${ours} bytes, sqlite3 baseline ${theirs} bytes"
}

# The recurring campaign: a weekly send at 10:00 on the recipient's clock, quiet hours.
RECURRING_SCHEDULE='  cron: "0 10 * * MON"
  quiet_hours: { start: "21:00", end: "08:00" }'

# bench_recurring ROWS: a weekly cron over the 30-day horizon for ROWS recipients in 30 zones
# against the one-shot plan of as many messages (an audience of that many recipients), each
# into a fresh database, alternating, best of BENCH_REPEAT (at least 2) each.
bench_recurring() {
    local rows=$1
    audience "$rows" "rec-$rows-z30"
    local rec_dir=$WORK/ratio-recurring one_dir=$WORK/ratio-oneshot
    make_project "$rec_dir" "$AUDIENCE" "{ type: console }" "$RECURRING_SCHEDULE"
    rm -f "$rec_dir/disparo.db"*
    env -C "$rec_dir" "$DISPARO" -q --db "$rec_dir/disparo.db" --now "$NOW" --format json plan bench --horizon 30d >"$rec_dir/plan.out"
    local messages
    messages=$(sed -n 's/.*"inserted":\([0-9]*\).*/\1/p' "$rec_dir/plan.out")
    [[ $messages -gt $rows ]] || { log "recurring plan: unexpected result: $(cat "$rec_dir/plan.out")"; exit 1; }
    audience "$messages" "one-$messages-z30"
    make_project "$one_dir" "$AUDIENCE" "{ type: console }" "$PLAN_SCHEDULE"
    local rec_walls=() one_walls=() n
    local runs=$((REPEAT < 2 ? 2 : REPEAT))
    for n in $(seq 1 "$runs"); do
        rm -f "$rec_dir/disparo.db"*
        measure "$rec_dir/plan.out" env -C "$rec_dir" "$DISPARO" -q --db "$rec_dir/disparo.db" \
            --now "$NOW" --format json plan bench --horizon 30d
        grep -q "\"inserted\":$messages" "$rec_dir/plan.out" || { log "recurring: $(cat "$rec_dir/plan.out")"; exit 1; }
        rec_walls+=("$LAST_WALL")
        rm -f "$one_dir/disparo.db"*
        measure "$one_dir/plan.out" env -C "$one_dir" "$DISPARO" -q --db "$one_dir/disparo.db" \
            --now "$NOW" --format json plan bench
        grep -q "\"inserted\":$messages" "$one_dir/plan.out" || { log "one-shot: $(cat "$one_dir/plan.out")"; exit 1; }
        one_walls+=("$LAST_WALL")
        log "recurring vs one-shot run $n: ${rec_walls[-1]} s vs ${one_walls[-1]} s"
    done
    local best_rec best_one r
    best_rec=$(best_of "${rec_walls[@]}")
    best_one=$(best_of "${one_walls[@]}")
    r=$(ratio "$best_rec" "$best_one")
    row "plan weekly cron, 30-day horizon, $rows recipients (30 zones) / one-shot plan of the same $messages messages" "${r}x" "ratio" \
        "target <= 2x: $(verdict "$r" '<=' 2.0); best of $runs alternating: $best_rec s (runs ${rec_walls[*]}) vs $best_one s (runs ${one_walls[*]})"
}

# bench_plan_rss ROWS NAME LIMIT_MB: one `plan` of ROWS recipients, its peak RSS against LIMIT_MB.
bench_plan_rss() {
    local rows=$1 name=$2 limit_mb=$3
    audience "$rows" "$name-z30"
    local dir=$WORK/rss-plan-$name
    make_project "$dir" "$AUDIENCE" "{ type: console }" "$PLAN_SCHEDULE"
    rm -f "$dir/disparo.db"*
    measure "$dir/plan.out" env -C "$dir" "$DISPARO" -q --db "$dir/disparo.db" --now "$NOW" \
        --format json plan bench
    grep -q "\"inserted\":$rows" "$dir/plan.out" || { log "plan $name: unexpected result: $(cat "$dir/plan.out")"; exit 1; }
    local mb db_mb
    mb=$(kb_to_mb "$LAST_RSS_KB")
    db_mb=$(($(stat -c %s "$dir/disparo.db") / 1048576))
    rm -f "$dir/disparo.db"*
    row "plan $name recipients, peak RSS" "$mb" "MB" \
        "target <= $limit_mb MB: $(verdict "$mb" '<=' "$limit_mb"); wall $LAST_WALL s ($(per_second "$rows" "$LAST_WALL") rows/s), db $db_mb MiB, audience $(($(stat -c %s "$AUDIENCE") / 1048576)) MiB"
}

# install_debian PACKAGE...: from Debian's packages, updating the lists once if needed.
install_debian() {
    local sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    log "installing $* from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
        { "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# free_port: a TCP port on 127.0.0.1 nothing listens on now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

NGINX_PID=""
# start_nginx DIR: one worker answering every request `200 {}`, keep-alive without limit.
start_nginx() {
    local dir=$1
    NGINX_PORT=$(free_port)
    mkdir -p "$dir/nginx"
    cat >"$dir/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path $dir/nginx/body;
    proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fastcgi;
    uwsgi_temp_path $dir/nginx/uwsgi;
    scgi_temp_path $dir/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { default_type application/json; return 200 '{}'; }
    }
}
EOF
    nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" 2>>"$dir/nginx/error.log" &
    NGINX_PID=$!
    local i
    for i in $(seq 1 500); do
        (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && return 0
        kill -0 "$NGINX_PID" 2>/dev/null || { cat "$dir/nginx/error.log" >&2; exit 1; }
        sleep 0.01
    done
    log "nginx did not start within 5 s"
    exit 1
}

stop_nginx() {
    [[ -n $NGINX_PID ]] || return 0
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
}

# capture_request DIR: one message sent by `disparo run` to a loopback capture server, which
# writes the request's body to DIR/body.json and its headers to DIR/headers.txt.
capture_request() {
    local dir=$1
    local cap=$dir/capture
    mkdir -p "$cap"
    head -n 2 "$AUDIENCE" >"$cap/one.csv"
    python3 - "$cap" >"$cap/port" <<'EOF' &
import http.server, sys, socketserver
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        open(out + "/body.json", "wb").write(body)
        open(out + "/headers.txt", "w").write("".join(f"{k}: {v}\n" for k, v in self.headers.items()))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
srv = socketserver.TCPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.handle_request()
EOF
    local pid=$! i
    for i in $(seq 1 500); do [[ -s $cap/port ]] && break; sleep 0.01; done
    make_project "$cap" "$cap/one.csv" "{ type: webhook, url: \"http://127.0.0.1:$(cat "$cap/port")/hook\" }"
    (cd "$cap" && "$DISPARO" -q --db "$cap/disparo.db" --now "$NOW" plan bench >/dev/null &&
        "$DISPARO" -q --db "$cap/disparo.db" --now "$NOW" run --once 2>/dev/null)
    wait "$pid"
    [[ -s $cap/body.json ]] || { log "capture server got no request"; exit 1; }
}

# wrk_lua DIR: a wrk script posting the captured body byte for byte, with disparo's headers and
# a distinct Idempotency-Key per request, as disparo sends.
wrk_lua() {
    local dir=$1 name value
    {
        printf 'local f = assert(io.open("%s", "rb"))\n' "$dir/capture/body.json"
        printf 'wrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\n'
        while IFS=': ' read -r name value; do
            case ${name,,} in
                host | content-length | idempotency-key | connection | "") ;;
                *) printf 'wrk.headers["%s"] = "%s"\n' "$name" "${value%$'\r'}" ;;
            esac
        done <"$dir/capture/headers.txt"
        cat <<'EOF'
local n = 0
request = function()
    n = n + 1
    wrk.headers["Idempotency-Key"] = "bench-" .. tostring(n)
    return wrk.format()
end
EOF
    } >"$dir/post.lua"
}

# bench_nginx ROWS: `run --once` of ROWS due messages into nginx (one worker, `return 200
# '{}'`), concurrency 64, every state change durable; and wrk with 64 connections posting the
# same body to the same nginx, back to back; alternating, best of BENCH_REPEAT (>= 2) each.
bench_nginx() {
    local rows=$1
    command -v nginx >/dev/null || install_debian nginx
    command -v wrk >/dev/null || install_debian wrk
    audience "$rows" "nginx-$rows-z30"
    local dir=$WORK/ratio-nginx
    mkdir -p "$dir"
    start_nginx "$dir"
    capture_request "$dir"
    wrk_lua "$dir"
    make_project "$dir/run" "$AUDIENCE" "{ type: webhook, url: \"http://127.0.0.1:$NGINX_PORT/hook\", concurrency: 64 }"
    local run_rates=() wrk_rates=() n wall
    local runs=$((REPEAT < 2 ? 2 : REPEAT))
    for n in $(seq 1 "$runs"); do
        rm -f "$dir/run/disparo.db"*
        (cd "$dir/run" && "$DISPARO" -q --db "$dir/run/disparo.db" --now "$NOW" plan bench >/dev/null)
        measure "$dir/run.out" env -C "$dir/run" "$DISPARO" --format json --db "$dir/run/disparo.db" \
            --now "$NOW" run --once 2>"$dir/run.err"
        local sent
        sent=$(sqlite3 "$dir/run/disparo.db" "SELECT count(*) FROM queue WHERE state = 'sent'")
        [[ $sent == "$rows" ]] || { log "run into nginx: $sent of $rows sent"; tail -3 "$dir/run.err" >&2; exit 1; }
        wall=$LAST_WALL
        run_rates+=("$(per_second "$rows" "$wall")")
        wrk -t 2 -c 64 -d 10s -s "$dir/post.lua" "http://127.0.0.1:$NGINX_PORT/hook" >"$dir/wrk.out"
        wrk_rates+=("$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$dir/wrk.out" | cut -d. -f1)")
        grep -q "Non-2xx" "$dir/wrk.out" && { log "wrk saw non-2xx answers"; cat "$dir/wrk.out" >&2; exit 1; }
        log "nginx run $n: disparo ${run_rates[-1]} msg/s, wrk ${wrk_rates[-1]} req/s"
    done
    stop_nginx
    local best_run best_wrk r
    best_run=$(max_of "${run_rates[@]}")
    best_wrk=$(max_of "${wrk_rates[@]}")
    r=$(ratio "$best_run" "$best_wrk")
    row "run $rows messages into nginx / wrk into the same nginx (64 connections)" "${r}x" "ratio" \
        "target >= 0.7x: $(verdict "$r" '>=' 0.7); best of $runs alternating: run $best_run msg/s (runs ${run_rates[*]}), every state change durable; wrk $best_wrk req/s (runs ${wrk_rates[*]}), $(wc -c <"$dir/capture/body.json")-byte body"
}
