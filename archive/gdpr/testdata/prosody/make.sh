#!/bin/bash
# make.sh: produce a real XEP-0227 export of Prosody (0.12, Debian's
# package), one file per user as Prosody writes them (USER@HOST.xml), for
# the import tests of archive/gdpr (TestImportProsody) and the seed corpus of
# FuzzImport. Run it again to regenerate; the output is committed.
#
# It starts Prosody as an ordinary process (user prosody) with a private
# configuration and data directory in a temporary directory and a free
# loopback port, creates two users (internal_hashed: SCRAM-SHA-1 hashes,
# no clear passwords), a roster item, a vCard and bookmarks through
# `prosodyctl shell` (Prosody's own storage API), stops it, and converts the
# data with `prosody-migrator` from the internal store to the xep0227 store.
# That store writes into Prosody's data path, /var/lib/prosody: the
# migrator runs in a private mount namespace where that path is this run's
# output directory, so the system's Prosody data is not touched. Prosody
# 0.12's xep0227 store cannot take offline messages (unsupported-datastore),
# so the export has none. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v prosody >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y prosody >/dev/null
T=$(mktemp -d /tmp/kontor-prosody-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$T/data" "$T/out"
cat >"$T/prosody.cfg.lua" <<LUA
pidfile = "$T/prosody.pid"
data_path = "$T/data"
log = { info = "$T/prosody.log" }
admin_socket = "$T/admin.sock"
modules_enabled = { "roster", "saslauth", "vcard", "private", "admin_shell" }
interfaces = { "127.0.0.1" }
c2s_ports = { $port }
s2s_ports = {}
http_ports = {}
https_ports = {}
c2s_direct_tls_ports = {}
authentication = "internal_hashed"
storage = "internal"
daemonize = false
VirtualHost "example.org"
LUA
cat >"$T/migrator.cfg.lua" <<LUA
input { hosts = { ["example.org"] = { "accounts", "roster", "vcard", "private" } }; type = "internal"; path = "$T/data" }
output { type = "xep0227" }
LUA
chown -R prosody "$T"
runuser -u prosody -- prosody --config "$T/prosody.cfg.lua" >"$T/stdout" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$T"' EXIT
for _ in $(seq 50); do [ -S "$T/admin.sock" ] && break; sleep 0.1; done
sh() { runuser -u prosody -- prosodyctl --config "$T/prosody.cfg.lua" shell "$1" | grep -v certmanager; }
sh "user:create('alice@example.org', 'Alice-Secret-1')"
sh "user:create('bob@example.org', 'Bob-Secret-2')"
sh ">local rm = require 'core.rostermanager'; local r = rm.load_roster('alice','example.org'); r['bob@example.org'] = {subscription='both', name='Bob Bauer', groups={Team=true}}; return rm.save_roster('alice','example.org',r)"
sh ">local st = require 'util.stanza'; return require'core.storagemanager'.open('example.org','vcard'):set('alice', st.preserialize(st.stanza('vCard',{xmlns='vcard-temp'}):text_tag('FN','Alice Adler')))"
sh ">local st = require 'util.stanza'; return require'core.storagemanager'.open('example.org','private'):set('alice', {['storage:storage:bookmarks'] = st.preserialize(st.stanza('storage',{xmlns='storage:bookmarks'}):tag('conference',{jid='team@conference.example.org',name='Team'}))})"
kill $pid
wait $pid 2>/dev/null || true
unshare -m sh -c "mount --bind '$T/out' /var/lib/prosody && runuser -u prosody -- prosody-migrator --config='$T/migrator.cfg.lua' input output" 2>&1 | grep -i "done\|error"
rm -f "$here"/*@example.org.xml
cp "$T/out/"*.xml "$here/"
echo "wrote $(cd "$here" && ls *.xml | tr '\n' ' ')from prosody $(prosodyctl about 2>/dev/null | grep -m1 -o 'Prosody [0-9][0-9.]*')"
