#!/bin/bash
# make.sh: produce export.xml (and example_org.xml, which it XIncludes), a
# real XEP-0227 export of ejabberd, for the
# import tests of archive/gdpr (TestImportEjabberd) and the seed corpus of
# FuzzImport. Run it again to regenerate; the output is committed.
#
# It starts Debian's ejabberd (23.01; `apt-get install ejabberd`) as an
# ordinary process with a private configuration, Mnesia database and spool
# in a temporary directory, a node name of its own and free loopback ports,
# so the system's ejabberd is not touched. It creates two users with SCRAM
# hashed passwords (auth_password_format: scram: the export has no clear
# passwords), a roster, vCards, private XML (bookmarks), a privacy list and
# an offline message, runs `ejabberdctl export_piefxis`, copies the file
# for the host here and stops the node. Needs root (ejabberd runs as the
# ejabberd user).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
command -v ejabberdctl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y ejabberd >/dev/null
T=$(mktemp -d /tmp/kontor-ejabberd-XXXXXX)
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(freeport)
dist=$(freeport)
node=kontor_export_$$@localhost
mkdir -p "$T/spool" "$T/log" "$T/export"
cat >"$T/ejabberd.yml" <<YAML
hosts: [example.org]
loglevel: warning
listen:
  - port: $port
    ip: "127.0.0.1"
    module: ejabberd_c2s
default_db: mnesia
auth_method: internal
auth_password_format: scram
acl:
  loopback: {ip: [127.0.0.0/8]}
access_rules:
  c2s: {allow: all}
modules:
  mod_roster: {}
  mod_vcard: {}
  mod_private: {}
  mod_privacy: {}
  mod_blocking: {}
  mod_offline: {}
  mod_disco: {}
  mod_admin_extra: {}
YAML
cp /etc/ejabberd/inetrc "$T/inetrc"
chown -R ejabberd "$T"
ctl() { runuser -u ejabberd -- env ERL_DIST_PORT="$dist" ejabberdctl --config-dir "$T" --config "$T/ejabberd.yml" \
	--logs "$T/log" --spool "$T/spool" --node "$node" "$@"; }
ctl foreground >"$T/stdout" 2>&1 &
pid=$!
trap 'ctl stop >/dev/null 2>&1 || true; wait $pid 2>/dev/null || true; rm -rf "$T"' EXIT
ctl started
ctl register alice example.org 'Alice-Secret-1'
ctl register bob example.org 'Bob-Secret-2'
ctl add_rosteritem alice example.org bob example.org 'Bob Bauer' Team both
ctl add_rosteritem bob example.org alice example.org 'Alice Adler' Team both
ctl add_rosteritem alice example.org carol example.net 'Carol (partner)' Partners to
ctl set_vcard alice example.org FN 'Alice Adler'
ctl set_vcard2 alice example.org EMAIL USERID 'alice@example.org'
ctl set_vcard2 alice example.org N GIVEN 'Alice'
ctl set_vcard2 alice example.org N FAMILY 'Adler'
ctl set_vcard bob example.org FN 'Bob Bauer'
ctl private_set alice example.org "<storage xmlns='storage:bookmarks'><conference jid='team@conference.example.org' name='Team' autojoin='true'/></storage>"
ctl privacy_set alice example.org "<query xmlns='jabber:iq:privacy'><list name='blocked'><item type='jid' value='spam@example.net' action='deny' order='1'/></list></query>" || true
ctl send_message chat bob@example.org alice@example.org 'Hello' 'KONTOR-EJABBERD-OFFLINE: Are you coming to the meeting?'
ctl export_piefxis_host "$T/export" example.org
# The export is a main file that XIncludes one file per host. Both are
# copied, the host file under a stable name (the href is changed to it:
# the only edit). Each run makes other SCRAM salts and timestamps.
main=$(ls "$T/export" | grep -v _example_org.xml)
hostfile=$(ls "$T/export" | grep _example_org.xml)
sed "s/href='$hostfile'/href='example_org.xml'/" "$T/export/$main" >"$here/export.xml"
cp "$T/export/$hostfile" "$here/example_org.xml"
echo "wrote $here/export.xml and example_org.xml from ejabberd $(ctl status | grep -o 'ejabberd [0-9.]*' | head -1)"
