package sasl

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
)

func TestFASTMechanisms(t *testing.T) {
	if got := FASTMechanisms(tlsCB); !slices.Equal(got, []string{HTSHA256Expr, HTSHA256None}) {
		t.Errorf("with a binding: %v", got)
	}
	if got := FASTMechanisms(ChannelBinding{}); !slices.Equal(got, []string{HTSHA256None}) {
		t.Errorf("without a binding: %v", got)
	}
	for _, m := range []string{HTSHA256Expr, HTSHA256None} {
		if !IsHT(m) {
			t.Errorf("IsHT(%q) = false", m)
		}
	}
	for _, m := range []string{"HT-SHA-256-UNIQ", "HT-SHA-256-ENDP", SCRAMSHA256, ""} {
		if IsHT(m) {
			t.Errorf("IsHT(%q) = true", m)
		}
	}
}

func TestHTBinding(t *testing.T) {
	tests := []struct {
		name string
		mech string
		cb   ChannelBinding
		want []byte
		ok   bool
	}{
		{"none", HTSHA256None, tlsCB, []byte{}, true},
		{"exporter", HTSHA256Expr, tlsCB, tlsCB.Data, true},
		{"exporter without binding", HTSHA256Expr, ChannelBinding{}, nil, false},
		{"unknown", "HT-SHA-256-UNIQ", tlsCB, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := HTBinding(tt.mech, tt.cb)
			if ok != tt.ok || !bytes.Equal(got, tt.want) {
				t.Errorf("HTBinding = %x, %v; want %x, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestHTVectors checks the arithmetic against an independent computation
// of draft-schmaus-kitten-sasl-ht §3: HMAC(token, "Initiator" || cb) and
// HMAC(token, "Responder" || cb).
func TestHTVectors(t *testing.T) {
	token := []byte("WXZzciBwYmFmdmZnZiBqdmd1IGp2eXFhcmZm")
	cb := []byte("0123456789abcdef0123456789abcdef")
	want := func(label string) []byte {
		m := hmac.New(sha256.New, token)
		m.Write(append([]byte(label), cb...))
		return m.Sum(nil)
	}
	if got := HTInitiator(token, cb); !bytes.Equal(got, want("Initiator")) {
		t.Errorf("initiator %x", got)
	}
	if got := HTResponder(token, cb); !bytes.Equal(got, want("Responder")) {
		t.Errorf("responder %x", got)
	}
	if !VerifyHT(token, cb, want("Initiator")) {
		t.Error("the right proof was refused")
	}
	if VerifyHT(token, nil, want("Initiator")) {
		t.Error("a proof for another channel binding was accepted")
	}
	if VerifyHT([]byte("other"), cb, want("Initiator")) {
		t.Error("a proof for another token was accepted")
	}
	if VerifyHT(token, cb, want("Responder")) {
		t.Error("the responder's value was accepted as the initiator's")
	}
}

func TestParseHT(t *testing.T) {
	proof := bytes.Repeat([]byte{7}, 32)
	msg := func(name string, p []byte) []byte { return append([]byte(name+"\x00"), p...) }
	tests := []struct {
		name string
		msg  []byte
		user string
		ok   bool
	}{
		{"valid", msg("alice", proof), "alice", true},
		{"NUL inside the proof", msg("bob", append(bytes.Repeat([]byte{0}, 31), 1)), "bob", true},
		{"no NUL", []byte("alice"), "", false},
		{"empty user", msg("", proof), "", false},
		{"short proof", msg("alice", proof[:31]), "", false},
		{"long proof", msg("alice", append(proof, 1)), "", false},
		{"not UTF-8", msg("al\xffice", proof), "", false},
		{"long user", msg(string(bytes.Repeat([]byte{'a'}, maxUsernameLen+1)), proof), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, p, err := ParseHT(tt.msg)
			if !tt.ok {
				var f *Failure
				if !errors.As(err, &f) || f.Condition != ConditionMalformedRequest {
					t.Fatalf("err = %v, want malformed-request", err)
				}
				return
			}
			if err != nil || user != tt.user || len(p) != 32 {
				t.Fatalf("ParseHT = %q, %x, %v", user, p, err)
			}
		})
	}
}

func FuzzParseHT(f *testing.F) {
	f.Add(append([]byte("alice\x00"), bytes.Repeat([]byte{1}, 32)...))
	f.Add([]byte("alice"))
	f.Add([]byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		user, proof, err := ParseHT(msg)
		if err != nil {
			var fl *Failure
			if !errors.As(err, &fl) || !knownConditions[fl.Condition] {
				t.Fatalf("error %v is not a known *Failure", err)
			}
			if user != "" || proof != nil {
				t.Fatal("data returned with an error")
			}
			return
		}
		if user == "" || len(proof) != 32 || !bytes.Equal(msg, append([]byte(user+"\x00"), proof...)) {
			t.Fatalf("ParseHT(%q) = %q, %x: does not round-trip", msg, user, proof)
		}
	})
}
