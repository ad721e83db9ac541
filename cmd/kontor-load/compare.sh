#!/bin/bash
# compare.sh: Kontor, Prosody and ejabberd side by side on this machine.
#
# Installs prosody, ejabberd and lua-dbi-postgresql from Debian's packages
# if missing, starts every server as an ordinary process with its own
# config in a temporary directory, on free loopback ports, each archiving
# every one-to-one message to its own PostgreSQL cluster (so that database
# CPU is attributed cleanly), provisions the same users in band, runs the
# same scenarios against all of them interleaved (A, B, C, A, B, C, ...)
# and prints one table: the median of each figure per server, and Kontor's
# ratio to the best peer. Everything started here is stopped at the end.
#
# Fair settings: rate limits and traffic shapers off everywhere, Nagle off
# (Prosody: network_settings.nagle = false), ejabberd's listen backlog raised from 5, MAM
# "always" on ejabberd and Prosody, SCRAM-hashed passwords everywhere.
# "kontor-nopolicy" is Kontor with the policy gate module off (issue 4's
# overhead figure); it runs the chat scenarios only. Kontor also runs both
# chat scenarios with stream management on (-sm; the rows marked +sm).
#
# Usage (as root): cmd/kontor-load/compare.sh
# Knobs (environment): ROUNDS LOGINS IDLE PAIRS RATE SECONDS OUT KEEP=1
#   PEERS="kontor" measures Kontor alone (default: "kontor prosody ejabberd")
#   IDLE_FRESH=1 restarts each server before its idle run, so that memory per
#   session is that of a fresh server (default: after the other scenarios)
set -euo pipefail

ROUNDS=${ROUNDS:-3}
LOGINS=${LOGINS:-500}
IDLE=${IDLE:-5000}
PAIRS=${PAIRS:-10}
RATE=${RATE:-100}
SECONDS_=${SECONDS:-10}
[ "${SECONDS_}" -gt 600 ] && SECONDS_=10   # bash's own $SECONDS when unset by the caller
REPO=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/kontor-compare.XXXXXX)
chmod 755 "$T"
OUT=${OUT:-$T/results.jsonl}
PIDS=()

log() { echo "compare: $*" >&2; }

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [ -n "${EJ_CTL:-}" ]; then $EJ_CTL stop >/dev/null 2>&1; fi
	for d in "$T"/pg-*; do [ -d "$d" ] && runuser -u postgres -- pg_ctl -D "$d" -m fast stop >/dev/null 2>&1; done
	sleep 1
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

waitport() { # port seconds
	for _ in $(seq 1 $((${2} * 10))); do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	log "nothing listens on port $1"; return 1
}

need=()
command -v prosody >/dev/null || need+=(prosody)
command -v ejabberdctl >/dev/null || need+=(ejabberd)
dpkg -s erlang-p1-pgsql >/dev/null 2>&1 || need+=(erlang-p1-pgsql)
[ -e /usr/lib/x86_64-linux-gnu/lua/5.4/dbd/postgresql.so ] || dpkg -s lua-dbi-postgresql >/dev/null 2>&1 || need+=(lua-dbi-postgresql)
command -v initdb >/dev/null || [ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${need[@]}" >&2
fi
PGBIN=/usr/lib/postgresql/15/bin
export PATH=$PGBIN:$PATH

log "building kontor and kontor-load"
(mkdir -p "$T/bin" && cd "$REPO" && go build -o "$T/bin/kontor" ./cmd/kontor && go build -o "$T/bin/kontor-load" ./cmd/kontor-load)

# One PostgreSQL cluster per server, the same settings for all.
startpg() { # name -> sets PGPORT_<name, - as _>
	local n=${1//-/_}
	local d="$T/pg-$n" port
	port=$(freeport)
	mkdir -p "$d" && chown postgres "$d"
	runuser -u postgres -- initdb -D "$d" --auth=trust -U postgres >/dev/null
	runuser -u postgres -- pg_ctl -D "$d" -l "$d/server.log" -w -o "-p $port -k $d -c listen_addresses=127.0.0.1" start >/dev/null
	runuser -u postgres -- psql -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE $n" >/dev/null
	eval "PGPORT_$n=$port"
}

# A throw-away certificate for Prosody and ejabberd (Kontor makes its own).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
	-keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
cat "$T/cert.pem" "$T/key.pem" >"$T/combined.pem"
chmod 644 "$T"/*.pem

declare -A ADDR DBPORT LAUNCH PID
SERVERS=()

# launch NAME: (re)starts a server with the command start_* recorded.
launch() {
	local name=$1
	( eval "exec ${LAUNCH[$name]}" ) &
	PID[$name]=$!
	PIDS+=($!)
	waitport "${ADDR[$name]##*:}" 60
}

# restart NAME: stops the server and starts it again (its data stays).
restart() {
	local name=$1 p=${PID[$1]}
	if [ "$name" = ejabberd ]; then
		$EJ_CTL stop >/dev/null 2>&1 || true
	else
		kill "$p" 2>/dev/null || true
	fi
	for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$p" 2>/dev/null || true
	sleep 0.5
	launch "$name"
}

start_kontor() { # name gate(on|off)
	local name=$1 port dir
	startpg "$name"
	port=$(freeport)
	dir="$T/$name"
	mkdir -p "$dir"
	"$T/bin/kontor" keys init --file "$dir/archive.kek" >/dev/null
	local modules=""
	if [ "$2" = off ]; then
		modules="modules: {enabled: [$("$T/bin/kontor" modules | awk '/\(default\)/{sub(":","",$1); print $1}' | grep -vx policy_gate | paste -sd, -)]}"
	fi
	cat >"$dir/kontor.yaml" <<YAML
domains: [localhost]
data_dir: $dir/data
log: {level: warn}
storage: {backend: postgres, postgres_dsn: "postgres://postgres@127.0.0.1:$(eval echo \$PGPORT_${name//-/_})/${name//-/_}?sslmode=disable"}
c2s: {starttls_addr: "127.0.0.1:$port", direct_tls_addr: "", max_connections_per_ip: 0}
admin: {addr: ""}
http: {addr: ""}
registration: {open: true, max_per_ip_per_hour: 0}
archive: {enabled: true, kek_file: $dir/archive.kek}
policy: {unknown_local_kind: employee}
$modules
YAML
	ADDR[$name]=127.0.0.1:$port
	LAUNCH[$name]="\"$T/bin/kontor\" --config \"$dir/kontor.yaml\" serve >>\"$dir/log\" 2>&1"
	launch "$name"
	DBPORT[$name]=$(eval echo \$PGPORT_${name//-/_})
	SERVERS+=("$name")
}

start_prosody() {
	startpg prosody
	local port s2s dir=$T/prosody
	port=$(freeport); s2s=$(freeport)
	mkdir -p "$dir/data"
	cat >"$dir/prosody.cfg.lua" <<LUA
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
run_as_root = true
daemonize = false
log = { warn = "$dir/prosody.log" }
interfaces = { "127.0.0.1" }
c2s_ports = { $port }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { $s2s }
s2s_interfaces = { "127.0.0.1" }
http_ports = { }
https_ports = { }
modules_disabled = { "s2s" }
network_settings = { nagle = false }  -- TCP_NODELAY (net/server_epoll.lua: cfg.nagle)
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "register", "mam" }
allow_registration = true
min_seconds_between_registrations = 0
c2s_require_encryption = true
authentication = "internal_hashed"
storage = "sql"
sql = { driver = "PostgreSQL", database = "prosody", username = "postgres", password = "", host = "127.0.0.1", port = $PGPORT_prosody }
archive_expires_after = "never"
default_archive_policy = true
max_archive_query_results = 50
ssl = { certificate = "$T/cert.pem", key = "$T/key.pem" }
VirtualHost "localhost"
LUA
	ADDR[prosody]=127.0.0.1:$port
	LAUNCH[prosody]="prosody --config \"$dir/prosody.cfg.lua\" -F >>\"$dir/stdout\" 2>&1"
	launch prosody
	DBPORT[prosody]=$PGPORT_prosody
	SERVERS+=(prosody)
}

start_ejabberd() {
	startpg ejabberd
	local port dist dir=$T/ejabberd
	port=$(freeport); dist=$(freeport)
	mkdir -p "$dir/spool" "$dir/log"
	runuser -u postgres -- psql -h 127.0.0.1 -p "$PGPORT_ejabberd" -U postgres -d ejabberd -qf /usr/share/ejabberd/sql/pg.sql >/dev/null
	cat >"$dir/ejabberd.yml" <<YAML
hosts: [localhost]
loglevel: warning
certfiles: ["$T/combined.pem"]
listen:
  - port: $port
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: true
    starttls_required: true
    max_stanza_size: 262144
    shaper: none
    access: c2s
    backlog: 1024
sql_type: pgsql
sql_server: 127.0.0.1
sql_port: $PGPORT_ejabberd
sql_database: ejabberd
sql_username: postgres
sql_password: ""
default_db: sql
auth_method: sql
auth_password_format: scram
registration_timeout: infinity
acl:
  loopback: {ip: [127.0.0.0/8]}
access_rules:
  c2s: {allow: all}
  register: {allow: all}
shaper_rules:
  c2s_shaper: none
  max_user_sessions: 100000
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_register: {ip_access: all, access: register}
  mod_mam: {default: always, db_type: sql}
YAML
	chown -R ejabberd "$dir"
	EJ_CTL="env ERL_DIST_PORT=$dist ejabberdctl --config-dir $dir --config $dir/ejabberd.yml --logs $dir/log --spool $dir/spool --node ejabberd_load@localhost"
	ADDR[ejabberd]=127.0.0.1:$port
	LAUNCH[ejabberd]="$EJ_CTL foreground >>\"$dir/stdout\" 2>&1"
	launch ejabberd
	DBPORT[ejabberd]=$PGPORT_ejabberd
	SERVERS+=(ejabberd)
}

read -r -a PEERS <<<"${PEERS:-kontor prosody ejabberd}"
log "starting servers in $T"
for s in "${PEERS[@]}"; do
	case $s in
	kontor) start_kontor kontor on; start_kontor kontor-nopolicy off ;;
	prosody) start_prosody ;;
	ejabberd) start_ejabberd ;;
	*) log "unknown server $s (kontor, prosody, ejabberd)"; exit 2 ;;
	esac
done

USERS=$((IDLE > LOGINS ? IDLE : LOGINS))
[ "$USERS" -lt $((2 * PAIRS)) ] && USERS=$((2 * PAIRS))
load() { # server args...
	local s=$1; shift
	"$T/bin/kontor-load" -label "$s" -addr "${ADDR[$s]}" -db-port "${DBPORT[$s]}" "$@" | tee -a "$OUT"
}
for s in "${SERVERS[@]}"; do
	log "registering $USERS users on $s"
	load "$s" -scenario register -users "$USERS" -concurrency 20 -settle 0 >/dev/null
done

NOPOLICY=()
[[ " ${PEERS[*]} " == *" kontor "* ]] && NOPOLICY=(kontor-nopolicy)
for r in $(seq 1 "$ROUNDS"); do
	log "round $r of $ROUNDS"
	for s in "${PEERS[@]}"; do load "$s" -scenario login -users "$LOGINS" -concurrency 20; done
	for s in "${PEERS[@]}" "${NOPOLICY[@]}"; do load "$s" -scenario chat -pairs "$PAIRS" -rate "$RATE" -duration "${SECONDS_}s"; done
	for s in "${PEERS[@]}" "${NOPOLICY[@]}"; do load "$s" -scenario chat -pairs "$PAIRS" -window 16 -duration "${SECONDS_}s"; done
	# Stream management's cost (issue 6): Kontor with XEP-0198 on every
	# client and an ack request after each message, against the runs above.
	if [ ${#NOPOLICY[@]} -gt 0 ]; then
		load kontor -scenario chat -pairs "$PAIRS" -rate "$RATE" -duration "${SECONDS_}s" -sm
		load kontor -scenario chat -pairs "$PAIRS" -window 16 -duration "${SECONDS_}s" -sm
	fi
	for s in "${PEERS[@]}"; do load "$s" -scenario mam -seed 500 -page 50 -duration "${SECONDS_}s"; done
	for s in "${PEERS[@]}"; do
		[ -n "${IDLE_FRESH:-}" ] && restart "$s"
		load "$s" -scenario idle -users "$IDLE" -concurrency 20 -settle 3s
	done
done >/dev/null

"$T/bin/kontor-load" -table "$OUT"
log "raw results: $OUT"
