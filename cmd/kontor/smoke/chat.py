#!/usr/bin/python3
"""A small slixmpp client for Kontor's smoke test (smoke.sh).

    chat.py send   --jid alice@localhost --password-file F --port N --ca CERT --to bob@localhost --body TEXT
    chat.py listen --jid bob@localhost   --password-file F --port N --ca CERT --expect 2 [--ready-file F]

It connects to 127.0.0.1:PORT with STARTTLS, trusting only CERT (the
server's self-signed certificate, loaded as a CA) and checking the server
name against the JID's domain. "send" sends one chat message and
disconnects; "listen" sends its initial presence, touches --ready-file, and
prints "BODY <text>" for each chat message until --expect have arrived.
Both exit non-zero on any failure or after --timeout seconds.

Written for Debian's python3-slixmpp 1.8 (run it with /usr/bin/python3).
"""

import argparse
import asyncio
import logging
import pathlib
import sys

import slixmpp


class Client(slixmpp.ClientXMPP):
    def __init__(self, args):
        password = pathlib.Path(args.password_file).read_text().splitlines()[0]
        super().__init__(args.jid, password)
        self.args = args
        self.ok = False
        self.received = 0
        # Trust the server's certificate and nothing else.
        self.ca_certs = args.ca
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("no_auth", self.on_no_auth)
        self.add_event_handler("connection_failed", self.on_connection_failed)
        self.add_event_handler("message", self.on_message)

    def fail(self, why):
        print(f"chat.py {self.args.mode} as {self.args.jid}: {why}", file=sys.stderr, flush=True)
        self.ok = False
        self.disconnect(wait=0)

    def on_failed_auth(self, event):
        # slixmpp goes on with its next mechanism; only no_auth is final.
        # (slixmpp 1.8 tries SCRAM-*-PLUS with tls-unique first, which does
        # not exist on TLS 1.3 and which Kontor refuses; see smoke.sh.)
        print(f"chat.py {self.args.mode} as {self.args.jid}: a SASL mechanism failed: {event}",
              file=sys.stderr, flush=True)

    def on_no_auth(self, _event):
        self.fail("authentication failed with every mechanism")

    def on_connection_failed(self, event):
        self.fail(f"connection failed: {event}")

    async def on_start(self, _event):
        self.send_presence()
        if self.args.mode == "send":
            self.send_message(mto=self.args.to, mbody=self.args.body, mtype="chat")
            self.ok = True
            # Closing the stream after the message: the server handles a
            # stream's stanzas in order, so the message is routed first.
            self.disconnect()
        else:
            if self.args.ready_file:
                pathlib.Path(self.args.ready_file).write_text("ready\n")
            print("READY", flush=True)

    def on_message(self, msg):
        if self.args.mode != "listen" or msg["type"] not in ("chat", "normal"):
            if msg["type"] == "error":
                self.fail(f"error message: {msg}")
            return
        print("BODY " + msg["body"], flush=True)
        self.received += 1
        if self.received >= self.args.expect:
            self.ok = True
            self.disconnect()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["send", "listen"])
    p.add_argument("--jid", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--to")
    p.add_argument("--body")
    p.add_argument("--expect", type=int, default=1)
    p.add_argument("--ready-file")
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--debug", action="store_true")
    args = p.parse_args()
    if args.mode == "send" and (not args.to or args.body is None):
        p.error("send needs --to and --body")
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s %(message)s")

    xmpp = Client(args)
    loop = asyncio.get_event_loop()
    loop.call_later(args.timeout, lambda: xmpp.fail(f"timed out after {args.timeout}s "
                                                     f"({xmpp.received} of {args.expect} messages)"))
    xmpp.connect(address=("127.0.0.1", args.port), use_ssl=False, force_starttls=True)
    xmpp.process(forever=False)
    sys.exit(0 if xmpp.ok else 1)


if __name__ == "__main__":
    main()
