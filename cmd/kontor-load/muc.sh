#!/bin/bash
# muc.sh: the group chat fan-out figure of the README (kontor-load's muc
# scenario) against Kontor alone: Kontor with the archive on PostgreSQL
# (its own cluster, so that database CPU is attributed cleanly), as
# compare.sh starts it, with max_occupants raised for one big room; it
# registers OCCUPANTS users in band, lets them join one room and has one of
# them post MESSAGES room messages, ROUNDS times, each a JSON line.
# Everything started here is stopped at the end.
#
# Usage (as root): cmd/kontor-load/muc.sh
# Knobs (environment): OCCUPANTS MESSAGES ROUNDS OUT KEEP=1
set -euo pipefail

OCCUPANTS=${OCCUPANTS:-500}
MESSAGES=${MESSAGES:-50}
ROUNDS=${ROUNDS:-3}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/kontor-muc.XXXXXX)
chmod 755 "$T"
OUT=${OUT:-$T/results.jsonl}
PIDS=()
PGBIN=/usr/lib/postgresql/15/bin
export PATH=$PGBIN:$PATH

log() { echo "muc: $*" >&2; }

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	[ -d "$T/pg" ] && runuser -u postgres -- pg_ctl -D "$T/pg" -m fast stop >/dev/null 2>&1
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

command -v initdb >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends postgresql >&2

log "building kontor and kontor-load"
(mkdir -p "$T/bin" && cd "$REPO" && go build -o "$T/bin/kontor" ./cmd/kontor && go build -o "$T/bin/kontor-load" ./cmd/kontor-load)

PGPORT=$(freeport)
mkdir -p "$T/pg" && chown postgres "$T/pg"
runuser -u postgres -- initdb -D "$T/pg" --auth=trust -U postgres >/dev/null
runuser -u postgres -- pg_ctl -D "$T/pg" -l "$T/pg/server.log" -w -o "-p $PGPORT -k $T/pg -c listen_addresses=127.0.0.1" start >/dev/null
runuser -u postgres -- psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE DATABASE kontor" >/dev/null

PORT=$(freeport)
dir=$T/kontor
mkdir -p "$dir"
"$T/bin/kontor" keys init --file "$dir/archive.kek" >/dev/null
cat >"$dir/kontor.yaml" <<YAML
domains: [localhost]
data_dir: $dir/data
log: {level: warn}
storage: {backend: postgres, postgres_dsn: "postgres://postgres@127.0.0.1:$PGPORT/kontor?sslmode=disable"}
c2s: {starttls_addr: "127.0.0.1:$PORT", direct_tls_addr: "", max_connections_per_ip: 0}
admin: {addr: ""}
registration: {open: true, max_per_ip_per_hour: 0}
archive: {enabled: true, kek_file: $dir/archive.kek}
policy: {unknown_local_kind: employee}
modules:
  muc: {max_occupants: $((OCCUPANTS + 10))}
YAML
"$T/bin/kontor" --config "$dir/kontor.yaml" serve >"$dir/log" 2>&1 &
PIDS+=($!)
waitport "$PORT" 30

load() { "$T/bin/kontor-load" -label kontor -addr "127.0.0.1:$PORT" -db-port "$PGPORT" "$@"; }
log "registering $OCCUPANTS users"
load -scenario register -users "$OCCUPANTS" -concurrency 20 -settle 0 >/dev/null
for r in $(seq 1 "$ROUNDS"); do
	log "round $r of $ROUNDS"
	load -scenario muc -occupants "$OCCUPANTS" -messages "$MESSAGES" -concurrency 20 -settle 2s -room "r$r@conference.localhost" | tee -a "$OUT"
done
log "results: $OUT"
