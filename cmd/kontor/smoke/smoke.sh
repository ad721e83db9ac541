#!/usr/bin/env bash
# Smoke test of Kontor with XMPP clients that are not Go code and not ours:
# Debian's python3-slixmpp (chat.py beside this script) and go-sendxmpp.
#
#   cmd/kontor/smoke/smoke.sh          (from anywhere; needs Go, and root or the two packages)
#
# It builds kontor (or uses $KONTOR_BIN; SMOKE_KEEP=1 keeps the temporary
# directory with the logs), starts it on free loopback ports
# with a temporary data directory, adds alice and bob, starts a slixmpp
# listener as bob, then sends bob one message as alice with slixmpp and one
# with go-sendxmpp, and checks that the listener printed both. Clients trust
# the server's generated self-signed certificate as their only CA and check
# the name "localhost"; nothing disables certificate verification.
#
# Missing packages are installed with apt-get when running as root;
# otherwise the script exits 3. With CI=true a missing tool is a failure
# like any other (exit 3 too), never a skip. It kills only the processes it
# started, by pid.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
PY=/usr/bin/python3

log() { printf 'smoke: %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------
missing=()
if ! [ -x "$PY" ] || ! "$PY" -c 'import slixmpp' 2>/dev/null; then missing+=(python3-slixmpp); fi
if ! command -v go-sendxmpp >/dev/null 2>&1; then missing+=(go-sendxmpp); fi
if ((${#missing[@]})); then
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		log "installing ${missing[*]}"
		# The same lock as core/storage/pgtest, so concurrent test binaries
		# do not run apt-get at once.
		flock /tmp/kontor-apt.lock sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"' sh "${missing[@]}" >&2
	else
		log "missing ${missing[*]} and not root: install them with apt-get install ${missing[*]}"
		exit 3
	fi
fi

# --- workspace and cleanup -------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kontor-smoke.XXXXXX")
pids=()
cleanup() {
	local rc=$?
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ]; then
		for f in "$tmp"/*.log "$tmp"/*.out; do
			[ -s "$f" ] || continue
			log "---- $(basename "$f") ----"
			tail -n 60 "$f" >&2
		done
	fi
	[ -n "${SMOKE_KEEP:-}" ] && log "kept $tmp" || rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------
kontor=${KONTOR_BIN:-}
if [ -z "$kontor" ]; then
	log "building kontor"
	(cd "$repo" && go build -o "$tmp/kontor" ./cmd/kontor)
	kontor=$tmp/kontor
fi

# --- server ------------------------------------------------------------------
cfg=$tmp/kontor.yaml
cat >"$cfg" <<EOF
domains: [localhost]
data_dir: "$tmp/data"
c2s:
  starttls_addr: "127.0.0.1:0"
  direct_tls_addr: "127.0.0.1:0"
admin:
  addr: "127.0.0.1:0"
http:
  addr: "127.0.0.1:0"
EOF
"$kontor" serve --config "$cfg" >"$tmp/serve.out" 2>"$tmp/serve.log" &
pids+=($!)
server_pid=$!

port=
for _ in $(seq 1 300); do
	line=$(grep -F 'XMPP clients (STARTTLS)' "$tmp/serve.out" 2>/dev/null || true)
	if [ -n "$line" ]; then
		port=${line##*:}
		break
	fi
	if ! kill -0 "$server_pid" 2>/dev/null; then
		log "kontor serve exited"
		exit 1
	fi
	sleep 0.1
done
if [ -z "$port" ]; then
	log "kontor did not print its STARTTLS address within 30s"
	exit 1
fi
ca=$tmp/data/tls/selfsigned.crt
log "kontor is listening on 127.0.0.1:$port (STARTTLS)"

printf 'alice-password-1\n' >"$tmp/alice.pw"
printf 'bob-password-2\n' >"$tmp/bob.pw"
"$kontor" user add --config "$cfg" --password-file "$tmp/alice.pw" alice@localhost >&2
"$kontor" user add --config "$cfg" --password-file "$tmp/bob.pw" bob@localhost >&2

# --- bob listens -------------------------------------------------------------
body_py="Hello Bob from slixmpp: Grüße 👋"
body_gs="Hello Bob from go-sendxmpp: <&> ✓"
"$PY" "$here/chat.py" listen --jid bob@localhost --password-file "$tmp/bob.pw" --port "$port" --ca "$ca" \
	--expect 2 --ready-file "$tmp/bob.ready" --timeout 60 >"$tmp/bob.out" 2>"$tmp/bob.log" &
pids+=($!)
listener_pid=$!
for _ in $(seq 1 300); do
	[ -e "$tmp/bob.ready" ] && break
	kill -0 "$listener_pid" 2>/dev/null || { log "the slixmpp listener exited before it was ready"; exit 1; }
	sleep 0.1
done
[ -e "$tmp/bob.ready" ] || { log "the slixmpp listener was not ready within 30s"; exit 1; }
log "bob (slixmpp) is online"

# --- (a) alice with slixmpp --------------------------------------------------
# Note: slixmpp 1.8 first tries SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS with
# the tls-unique channel binding, which RFC 9266 leaves undefined on TLS 1.3
# and Kontor refuses (it offers tls-exporter only, XEP-0440); then
# SCRAM-SHA-256 and SCRAM-SHA-1 with "y" (client supports binding), which
# Kontor must refuse as a downgrade (RFC 5802 §6) since it offered -PLUS;
# then it logs in with PLAIN. Four failed attempts per slixmpp login.
"$PY" "$here/chat.py" send --jid alice@localhost --password-file "$tmp/alice.pw" --port "$port" --ca "$ca" \
	--to bob@localhost --body "$body_py" --timeout 30 >"$tmp/alice-slixmpp.out" 2>"$tmp/alice-slixmpp.log"
log "alice sent a message with slixmpp"

# --- (b) alice with go-sendxmpp ----------------------------------------------
# go-sendxmpp (mattn/go-xmpp, STARTTLS) verifies the certificate against the
# system roots; Go's crypto/x509 reads them from SSL_CERT_FILE, so the
# server's certificate becomes its only CA. -j localhost:PORT makes it
# verify the name "localhost" (the certificate's name).
printf '%s\n' "$body_gs" | SSL_CERT_FILE="$ca" SSL_CERT_DIR=/nonexistent HOME="$tmp" timeout 30 \
	go-sendxmpp -u alice@localhost -p "$(cat "$tmp/alice.pw")" -j "localhost:$port" bob@localhost \
	>"$tmp/go-sendxmpp.out" 2>"$tmp/go-sendxmpp.log"
log "alice sent a message with go-sendxmpp"

# --- both clients really verify the certificate ---------------------------------
# With the system's CAs instead of the server's certificate both must refuse
# to log in; otherwise the checks above would prove nothing about TLS.
system_ca=/etc/ssl/certs/ca-certificates.crt
if ! [ -s "$system_ca" ]; then
	system_ca=$tmp/empty-ca.pem
	: >"$system_ca"
fi
if printf 'must not arrive\n' | SSL_CERT_FILE="$system_ca" SSL_CERT_DIR=/nonexistent HOME="$tmp" timeout 30 \
	go-sendxmpp -u alice@localhost -p "$(cat "$tmp/alice.pw")" -j "localhost:$port" bob@localhost \
	>"$tmp/go-sendxmpp-untrusted.out" 2>"$tmp/go-sendxmpp-untrusted.log"; then
	log "go-sendxmpp logged in although it does not trust the server's certificate"
	exit 1
fi
if "$PY" "$here/chat.py" send --jid alice@localhost --password-file "$tmp/alice.pw" --port "$port" --ca "$system_ca" \
	--to bob@localhost --body "must not arrive" --timeout 15 >"$tmp/alice-untrusted.out" 2>"$tmp/alice-untrusted.log"; then
	log "slixmpp logged in although it does not trust the server's certificate"
	exit 1
fi
for f in go-sendxmpp-untrusted alice-untrusted; do
	if ! grep -qiE 'x509|certificate' "$tmp/$f.log"; then
		log "$f failed, but not because of the certificate:"
		cat "$tmp/$f.log" >&2
		exit 1
	fi
done
log "both clients refuse the server when they do not trust its certificate"

# --- bob got both ------------------------------------------------------------
if ! wait "$listener_pid"; then
	log "the slixmpp listener failed"
	exit 1
fi
ok=1
for want in "$body_py" "$body_gs"; do
	if ! grep -qxF "BODY $want" "$tmp/bob.out"; then
		log "bob did not receive: $want"
		ok=0
	fi
done
if [ "$ok" -ne 1 ]; then
	log "bob received:"
	cat "$tmp/bob.out" >&2
	exit 1
fi
cat "$tmp/bob.out"
log "OK: bob received both messages"
