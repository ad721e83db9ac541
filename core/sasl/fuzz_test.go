package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// knownConditions are the RFC 6120 §6.5 conditions a Failure may carry.
var knownConditions = map[string]bool{
	ConditionAborted: true, ConditionAccountDisabled: true, ConditionCredentialsExpired: true,
	ConditionEncryptionRequired: true, ConditionIncorrectEncoding: true, ConditionInvalidAuthzid: true,
	ConditionInvalidMechanism: true, ConditionMalformedRequest: true, ConditionMechanismTooWeak: true,
	ConditionNotAuthorized: true, ConditionTemporaryAuthFailure: true,
}

// checkStep checks the contract of a Step result: an error is a *Failure
// with a known condition and no data.
func checkStep(t *testing.T, out []byte, done bool, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("error %v (%T) is not a *Failure", err, err)
	}
	if !knownConditions[f.Condition] {
		t.Fatalf("unknown condition %q", f.Condition)
	}
	if out != nil || done {
		t.Fatalf("failure with data %q, done %v", out, done)
	}
}

// fuzzSCRAMConfigs are the server set-ups the SCRAM fuzzers run against.
var fuzzSCRAMConfigs = []struct {
	mech    string
	cb      ChannelBinding
	offered []string
	first   string // a valid client-first-message for it
}{
	{SCRAMSHA256, tlsCB, Mechanisms(true, tlsCB), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"},
	{SCRAMSHA1, ChannelBinding{}, Mechanisms(false, ChannelBinding{}), "y,a=admin,n=user,r=fyko+d2lbbFgONRv9qkxdawL"},
	{SCRAMSHA256Plus, tlsCB, Mechanisms(true, tlsCB), "p=tls-exporter,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"},
}

func FuzzSCRAMClientFirst(f *testing.F) {
	for _, c := range fuzzSCRAMConfigs {
		f.Add([]byte(c.first))
	}
	for _, s := range []string{
		"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		"n,a=a=3Db=2Cc,n=us=2Cer,r=abc,x=ext",
		"y,,m=mandatory,n=user,r=abc",
		"p=tls-unique,,n=user,r=abc",
		"n,,n=us=er,r=abc",
		"n,,n=user=2",
		"n,,n=,r=",
		"n,,",
		"",
	} {
		f.Add([]byte(s))
	}
	auth := newTestAuth(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		for _, c := range fuzzSCRAMConfigs {
			s := newServer(t, c.mech, auth, c.cb, c.offered, "")
			out, done, err := s.Step(context.Background(), msg)
			checkStep(t, out, done, err)
			if err != nil {
				continue
			}
			if done || !bytes.HasPrefix(out, []byte("r=")) {
				t.Fatalf("Step(%q) = %q, %v; want a server-first-message", msg, out, done)
			}
			// The exchange goes on, and fails, cleanly.
			out, done, err = s.Step(context.Background(), msg)
			checkStep(t, out, done, err)
			if err == nil {
				t.Fatalf("the client-first-message %q was accepted as client-final-message", msg)
			}
		}
	})
}

// fuzzFinalNonce is the fixed server nonce FuzzSCRAMClientFinal uses, so
// that the seeds hold valid client-final-messages.
const fuzzFinalNonce = "3rfcNHYJY1ZVvWVs7j"

// validFinal returns the valid client-final-message for config c and the
// fixed nonce.
func validFinal(tb testing.TB, auth Authenticator, i int) []byte {
	tb.Helper()
	c := fuzzSCRAMConfigs[i]
	cl := testClient{hash: mechanisms[c.mech].hash, user: "user", password: "pencil",
		gs2: c.first[:strings.Index(c.first, "n=user")]}
	if strings.HasPrefix(cl.gs2, "p=") {
		cl.cbData = c.cb.Data
	}
	s := newServer(tb, c.mech, auth, c.cb, c.offered, fuzzFinalNonce)
	serverFirst, _, err := s.Step(context.Background(), cl.first())
	if err != nil {
		tb.Fatal(err)
	}
	return cl.final(tb, serverFirst)
}

// vectorAuth knows "user"/"pencil" with the salts of the RFC 5802 and RFC
// 7677 examples, so that valid messages are the same in every run and can
// live in the seed corpus.
func vectorAuth(tb testing.TB) *testAuth {
	tb.Helper()
	a := newTestAuth(tb)
	for h, salt64 := range map[Hash]string{SHA1: "QSXCR+Q6sek8bf92", SHA256: "W22ZaJ0SNY7soEsUEjb6gQ=="} {
		salt, err := base64.StdEncoding.DecodeString(salt64)
		if err != nil {
			tb.Fatal(err)
		}
		c, err := deriveCredential(h, "pencil", salt, 4096)
		if err != nil {
			tb.Fatal(err)
		}
		a.creds["user"][h] = c
	}
	return a
}

func FuzzSCRAMClientFinal(f *testing.F) {
	auth := vectorAuth(f)
	valid := make([][]byte, len(fuzzSCRAMConfigs))
	for i := range fuzzSCRAMConfigs {
		valid[i] = validFinal(f, auth, i)
		c := fuzzSCRAMConfigs[i]
		s := newServer(f, c.mech, auth, c.cb, c.offered, fuzzFinalNonce)
		if _, _, err := s.Step(context.Background(), []byte(c.first)); err != nil {
			f.Fatal(err)
		}
		if _, done, err := s.Step(context.Background(), valid[i]); !done || err != nil {
			f.Fatalf("%s: the valid client-final-message fails: %v", c.mech, err)
		}
		f.Add(valid[i])
		f.Add(append(bytes.Clone(valid[i]), ",x=1"...))
	}
	for _, s := range []string{
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,e=x,p=",
		"c=,r=,p=",
		"c=biws",
		",",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for i, c := range fuzzSCRAMConfigs {
			s := newServer(t, c.mech, auth, c.cb, c.offered, fuzzFinalNonce)
			if _, _, err := s.Step(context.Background(), []byte(c.first)); err != nil {
				t.Fatal(err)
			}
			out, done, err := s.Step(context.Background(), msg)
			checkStep(t, out, done, err)
			if err != nil {
				continue
			}
			// Only the one valid message can succeed: anything else would be
			// a forged proof or a binding that was not checked.
			if !done || !bytes.Equal(msg, valid[i]) || !bytes.HasPrefix(out, []byte("v=")) {
				t.Fatalf("%s: Step(%q) = %q, %v; only %q may succeed", c.mech, msg, out, done, valid[i])
			}
		}
	})
}

func FuzzPlain(f *testing.F) {
	for _, s := range []string{
		"\x00user\x00pencil",
		"admin@example.com\x00user\x00pencil",
		"\x00dir\x00secret",
		"\x00off\x00pencil",
		"\x00user\x00wrong",
		"\x00nobody\x00pencil",
		"\x00\x00",
		"user\x00pencil",
		"\x00user\x00pen\x00cil",
		"\xff\x00user\x00pencil",
		"",
	} {
		f.Add([]byte(s))
	}
	auth := newTestAuth(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		s := newServer(t, Plain, auth, ChannelBinding{}, Mechanisms(true, ChannelBinding{}), "")
		out, done, err := s.Step(context.Background(), msg)
		checkStep(t, out, done, err)
		if err != nil {
			return
		}
		parts := strings.Split(string(msg), "\x00")
		if !done || out != nil || len(parts) != 3 {
			t.Fatalf("Step(%q) = %q, %v", msg, out, done)
		}
		switch parts[1] + "\x00" + parts[2] {
		case "user\x00pencil", "dir\x00secret":
		default:
			t.Fatalf("Step(%q) succeeded", msg)
		}
		if s.Username() != parts[1] || s.Authzid() != parts[0] {
			t.Fatalf("Username, Authzid = %q, %q for %q", s.Username(), s.Authzid(), msg)
		}
	})
}
