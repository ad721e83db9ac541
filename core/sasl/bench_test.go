package sasl

import (
	"bytes"
	"context"
	"testing"
)

// BenchmarkSCRAMSHA256Server measures the server side of a complete
// SCRAM-SHA-256 login at 4096 iterations: NewServer, the credential lookup
// (in memory), the server-first-message and the proof check. The client's
// messages are computed once, outside the timer, against a fixed server
// nonce.
func BenchmarkSCRAMSHA256Server(b *testing.B) {
	ctx := context.Background()
	auth := newTestAuth(b)
	offered := Mechanisms(true, ChannelBinding{})
	c := testClient{hash: SHA256, user: "user", password: "pencil"}
	first := c.first()
	s := newServer(b, SCRAMSHA256, auth, ChannelBinding{}, offered, fuzzFinalNonce)
	serverFirst, _, err := s.Step(ctx, first)
	if err != nil {
		b.Fatal(err)
	}
	final := c.final(b, serverFirst)
	opt := WithSecret(testSecret)

	b.ReportAllocs()
	for b.Loop() {
		s, err := NewServer(SCRAMSHA256, auth, ChannelBinding{}, offered, opt)
		if err != nil {
			b.Fatal(err)
		}
		s.serverNonce = fuzzFinalNonce
		if _, _, err := s.Step(ctx, first); err != nil {
			b.Fatal(err)
		}
		if _, done, err := s.Step(ctx, final); !done || err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSCRAMSHA256UnknownUser is the same exchange for an account that
// does not exist, to compare with BenchmarkSCRAMSHA256Server.
func BenchmarkSCRAMSHA256UnknownUser(b *testing.B) {
	ctx := context.Background()
	auth := newTestAuth(b)
	offered := Mechanisms(true, ChannelBinding{})
	c := testClient{hash: SHA256, user: "nobody", password: "pencil"}
	first := c.first()
	s := newServer(b, SCRAMSHA256, auth, ChannelBinding{}, offered, fuzzFinalNonce)
	serverFirst, _, err := s.Step(ctx, first)
	if err != nil {
		b.Fatal(err)
	}
	final := c.final(b, serverFirst)
	opt := WithSecret(testSecret)

	b.ReportAllocs()
	for b.Loop() {
		s, _ := NewServer(SCRAMSHA256, auth, ChannelBinding{}, offered, opt)
		s.serverNonce = fuzzFinalNonce
		if _, _, err := s.Step(ctx, first); err != nil {
			b.Fatal(err)
		}
		if _, _, err := s.Step(ctx, final); err == nil {
			b.Fatal("unknown user logged in")
		}
	}
}

// BenchmarkPlainServer measures a PLAIN login of a local account, which is
// dominated by PBKDF2.
func BenchmarkPlainServer(b *testing.B) {
	ctx := context.Background()
	auth := newTestAuth(b)
	offered := Mechanisms(true, ChannelBinding{})
	msg := []byte("\x00user\x00pencil")
	opt := WithSecret(testSecret)
	b.ReportAllocs()
	for b.Loop() {
		s, _ := NewServer(Plain, auth, ChannelBinding{}, offered, opt)
		if _, done, err := s.Step(ctx, msg); !done || err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewCredential(b *testing.B) {
	for _, h := range []Hash{SHA1, SHA256} {
		b.Run(string(h), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewCredential(h, "correct horse battery staple", MinIterations); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyHT is the server's cost of checking one FAST login's
// proof (HT-SHA-256), per candidate token.
func BenchmarkVerifyHT(b *testing.B) {
	token, cb := []byte("WXZzciBwYmFmdmZnZiBqdmd1IGp2eXFhcmZm"), bytes.Repeat([]byte{1}, 32)
	proof := HTInitiator(token, cb)
	b.ReportAllocs()
	for b.Loop() {
		if !VerifyHT(token, cb, proof) {
			b.Fatal("proof refused")
		}
	}
}
