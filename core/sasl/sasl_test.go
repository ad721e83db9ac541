package sasl

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMechanisms(t *testing.T) {
	tests := []struct {
		name  string
		tlsOn bool
		cb    ChannelBinding
		want  []string
	}{
		{"plain TCP", false, ChannelBinding{}, []string{SCRAMSHA256, SCRAMSHA1}},
		{"plain TCP with binding data (impossible, ignored)", false, tlsCB, []string{SCRAMSHA256, SCRAMSHA1}},
		{"TLS without binding", true, ChannelBinding{}, []string{SCRAMSHA256, SCRAMSHA1, Plain}},
		{"TLS with tls-exporter", true, tlsCB, []string{SCRAMSHA256Plus, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA1, Plain}},
		{"TLS with an unsupported binding type", true, ChannelBinding{Type: "tls-unique", Data: cbData},
			[]string{SCRAMSHA256, SCRAMSHA1, Plain}},
		{"TLS with empty binding data", true, ChannelBinding{Type: TypeTLSExporter, Data: []byte{}},
			[]string{SCRAMSHA256, SCRAMSHA1, Plain}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Mechanisms(tt.tlsOn, tt.cb); !slices.Equal(got, tt.want) {
				t.Errorf("Mechanisms = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewServer(t *testing.T) {
	auth := newTestAuth(t)
	noTLS := Mechanisms(false, ChannelBinding{})
	tests := []struct {
		name    string
		mech    string
		auth    Authenticator
		cb      ChannelBinding
		offered []string
		opts    []Option
		cond    string // "" for success
	}{
		{name: "SCRAM-SHA-256", mech: SCRAMSHA256, auth: auth, offered: noTLS},
		{name: "PLUS with binding", mech: SCRAMSHA256Plus, auth: auth, cb: tlsCB, offered: Mechanisms(true, tlsCB)},
		{name: "unknown mechanism", mech: "DIGEST-MD5", auth: auth, offered: []string{"DIGEST-MD5"}, cond: ConditionInvalidMechanism},
		{name: "lower-case name", mech: "scram-sha-256", auth: auth, offered: noTLS, cond: ConditionInvalidMechanism},
		{name: "not offered", mech: SCRAMSHA1, auth: auth, offered: []string{SCRAMSHA256}, cond: ConditionInvalidMechanism},
		{name: "PLAIN without TLS is not offered", mech: Plain, auth: auth, offered: noTLS, cond: ConditionInvalidMechanism},
		{name: "PLUS not offered", mech: SCRAMSHA256Plus, auth: auth, cb: tlsCB, offered: Mechanisms(true, ChannelBinding{}),
			cond: ConditionInvalidMechanism},
		{name: "PLUS offered but no binding", mech: SCRAMSHA256Plus, auth: auth, offered: Mechanisms(true, tlsCB),
			cond: ConditionInvalidMechanism},
		{name: "nil Authenticator", mech: SCRAMSHA256, offered: noTLS, cond: ConditionTemporaryAuthFailure},
		{name: "short secret", mech: SCRAMSHA256, auth: auth, offered: noTLS, opts: []Option{WithSecret([]byte("short"))},
			cond: ConditionTemporaryAuthFailure},
		{name: "too few iterations", mech: SCRAMSHA256, auth: auth, offered: noTLS, opts: []Option{WithIterations(4095)},
			cond: ConditionTemporaryAuthFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewServer(tt.mech, tt.auth, tt.cb, tt.offered, tt.opts...)
			if tt.cond == "" {
				if err != nil || s == nil {
					t.Fatalf("NewServer = %v, %v", s, err)
				}
				return
			}
			wantFailure(t, err, tt.cond, "-", nil)
			if s != nil {
				t.Error("NewServer returned a Server with an error")
			}
		})
	}
}

func TestPlain(t *testing.T) {
	backend := errors.New("ldap: connection refused")
	tests := []struct {
		name      string
		msg       []byte
		noInitial bool
		backend   error
		cond      string // "" for success
		cause     error
		user      string
		authzid   string
	}{
		{name: "local account", msg: []byte("\x00user\x00pencil"), user: "user"},
		{name: "local account, no initial response", msg: []byte("\x00user\x00pencil"), noInitial: true, user: "user"},
		{name: "with authzid", msg: []byte("admin@example.com\x00user\x00pencil"), user: "user", authzid: "admin@example.com"},
		{name: "directory account", msg: []byte("\x00dir\x00secret"), user: "dir"},
		{name: "wrong password", msg: []byte("\x00user\x00pencil2"), cond: ConditionNotAuthorized, cause: ErrBadPassword},
		{name: "unknown user", msg: []byte("\x00nobody\x00pencil"), cond: ConditionNotAuthorized, cause: ErrUnknownUser},
		{name: "directory wrong password", msg: []byte("\x00dir\x00pencil"), cond: ConditionNotAuthorized, cause: ErrBadPassword},
		{name: "disabled, right password", msg: []byte("\x00off\x00pencil"), cond: ConditionAccountDisabled, cause: ErrDisabled},
		{name: "disabled, wrong password", msg: []byte("\x00off\x00x"), cond: ConditionNotAuthorized, cause: ErrBadPassword},
		{name: "backend down", msg: []byte("\x00user\x00pencil"), backend: backend, cond: ConditionTemporaryAuthFailure, cause: backend},
		{name: "empty authcid", msg: []byte("\x00\x00pencil"), cond: ConditionMalformedRequest},
		{name: "empty password", msg: []byte("\x00user\x00"), cond: ConditionMalformedRequest},
		{name: "empty message", msg: []byte{}, cond: ConditionMalformedRequest},
		{name: "one NUL", msg: []byte("user\x00pencil"), cond: ConditionMalformedRequest},
		{name: "no NUL", msg: []byte("userpencil"), cond: ConditionMalformedRequest},
		{name: "NUL in password", msg: []byte("\x00user\x00pen\x00cil"), cond: ConditionMalformedRequest},
		{name: "invalid UTF-8", msg: []byte("\x00user\x00pen\xffcil"), cond: ConditionMalformedRequest},
		{name: "username too long", msg: []byte("\x00" + strings.Repeat("u", 1024) + "\x00pencil"), cond: ConditionMalformedRequest},
		{name: "oversize", msg: []byte("\x00user\x00" + strings.Repeat("p", MaxMessageSize)), cond: ConditionMalformedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			auth := newTestAuth(t)
			auth.err = tt.backend
			s := newServer(t, Plain, auth, ChannelBinding{}, Mechanisms(true, ChannelBinding{}), "")
			if tt.noInitial {
				ch, done, err := s.Step(ctx, nil)
				if err != nil || done || ch == nil || len(ch) != 0 {
					t.Fatalf("Step(nil) = %q, %v, %v; want empty challenge", ch, done, err)
				}
			}
			out, done, err := s.Step(ctx, tt.msg)
			if tt.cond == "" {
				if err != nil || !done || out != nil {
					t.Fatalf("Step = %q, %v, %v; want success without data", out, done, err)
				}
				if s.Username() != tt.user || s.Authzid() != tt.authzid {
					t.Errorf("Username, Authzid = %q, %q; want %q, %q", s.Username(), s.Authzid(), tt.user, tt.authzid)
				}
				return
			}
			f := wantFailure(t, err, tt.cond, "", tt.cause)
			if done || out != nil || s.Username() != "" || s.Authzid() != "" {
				t.Errorf("failed Step returned %q, %v; Username %q", out, done, s.Username())
			}
			if strings.Contains(f.Text, "pencil") {
				t.Errorf("failure text %q contains the password", f.Text)
			}
		})
	}
	t.Run("unknown user and wrong password look alike", func(t *testing.T) {
		get := func(msg string) *Failure {
			s := newServer(t, Plain, newTestAuth(t), ChannelBinding{}, Mechanisms(true, ChannelBinding{}), "")
			_, _, err := s.Step(context.Background(), []byte(msg))
			var f *Failure
			if !errors.As(err, &f) {
				t.Fatalf("error %v is not a *Failure", err)
			}
			return f
		}
		a, b := get("\x00user\x00wrong"), get("\x00nobody\x00wrong")
		if a.Condition != b.Condition || a.Text != b.Text {
			t.Errorf("wrong password %+v, unknown user %+v", a, b)
		}
	})
}

func TestNewCredential(t *testing.T) {
	tests := []struct {
		name       string
		hash       Hash
		password   string
		iterations int
		wantErr    bool
	}{
		{"SHA-256", SHA256, "pencil", 4096, false},
		{"SHA-1", SHA1, "pencil", 4096, false},
		{"more iterations", SHA256, "pencil", 10000, false},
		{"too few iterations", SHA256, "pencil", 4095, true},
		{"too many iterations", SHA256, "pencil", MaxIterations + 1, true},
		{"unknown hash", Hash("SHA-512"), "pencil", 4096, true},
		{"empty password", SHA256, "", 4096, true},
		{"password with a control character", SHA256, "pen\x07cil", 4096, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCredential(tt.hash, tt.password, tt.iterations)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewCredential succeeded: %+v", c)
				}
				if !strings.HasPrefix(err.Error(), "sasl: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Hash != tt.hash || c.Iterations != tt.iterations || len(c.Salt) < 16 ||
				len(c.StoredKey) != tt.hash.size() || len(c.ServerKey) != tt.hash.size() {
				t.Errorf("credential %+v has the wrong shape", c)
			}
			d, err := NewCredential(tt.hash, tt.password, tt.iterations)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(c.Salt, d.Salt) || bytes.Equal(c.StoredKey, d.StoredKey) {
				t.Error("two credentials for the same password share a salt or key")
			}
		})
	}
}

func TestVerifyPlainWithCredential(t *testing.T) {
	c, err := NewCredential(SHA256, "pencil", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	nbsp, err := NewCredential(SHA256, "pen\u00a0cil", MinIterations) // OpaqueString maps U+00A0 to U+0020
	if err != nil {
		t.Fatal(err)
	}
	nfc, err := NewCredential(SHA1, "caf\u00e9", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := c
	corrupt.StoredKey = c.StoredKey[:10]
	tests := []struct {
		name     string
		cred     Credential
		password string
		want     bool
	}{
		{"right password", c, "pencil", true},
		{"wrong password", c, "pencil2", false},
		{"case matters", c, "Pencil", false},
		{"empty password", c, "", false},
		{"non-ASCII space mapped", nbsp, "pen cil", true},
		{"NFC and NFD alike", nfc, "cafe\u0301", true},
		{"zero credential", Credential{}, "pencil", false},
		{"corrupt credential", corrupt, "pencil", false},
		{"hash mislabelled", Credential{Hash: SHA1, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}, "pencil", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VerifyPlainWithCredential(tt.cred, tt.password); got != tt.want {
				t.Errorf("VerifyPlainWithCredential(%q) = %v, want %v", tt.password, got, tt.want)
			}
		})
	}
}

func TestFailureError(t *testing.T) {
	f := &Failure{Condition: ConditionNotAuthorized, SCRAMError: scramInvalidProof, cause: ErrUnknownUser}
	if got, want := f.Error(), "sasl: not-authorized (e=invalid-proof): sasl: unknown user"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(f, ErrUnknownUser) {
		t.Error("errors.Is(f, ErrUnknownUser) = false")
	}
	f = &Failure{Condition: ConditionMalformedRequest, Text: "empty password"}
	if got, want := f.Error(), "sasl: malformed-request: empty password"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestTLSExporter(t *testing.T) {
	tests := []struct {
		name    string
		version uint16
		want    bool
	}{
		{"TLS 1.3", tls.VersionTLS13, true},
		{"TLS 1.2", tls.VersionTLS12, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := tlsPair(t, tt.version)
			cb := TLSExporter(&server)
			if got := cb.usable(); got != tt.want {
				t.Fatalf("TLSExporter usable = %v, want %v (%+v)", got, tt.want, cb)
			}
			if !tt.want {
				return
			}
			want, err := client.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
			if err != nil {
				t.Fatal(err)
			}
			if cb.Type != "tls-exporter" || !bytes.Equal(cb.Data, want) {
				t.Errorf("TLSExporter = %+v, client exports %x", cb, want)
			}
		})
	}
	if cb := TLSExporter(nil); cb.Type != "" || cb.Data != nil {
		t.Errorf("TLSExporter(nil) = %+v", cb)
	}
}
