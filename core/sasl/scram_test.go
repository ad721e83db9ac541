package sasl

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// TestSCRAMVectors runs the exchanges of RFC 5802 §5 and RFC 7677 §3
// byte for byte.
func TestSCRAMVectors(t *testing.T) {
	tests := []struct {
		name        string
		mech        string
		hash        Hash
		salt        string
		snonce      string
		clientFirst string
		serverFirst string
		clientFinal string
		serverFinal string
	}{
		{
			name:        "RFC 5802 SCRAM-SHA-1",
			mech:        SCRAMSHA1,
			hash:        SHA1,
			salt:        "QSXCR+Q6sek8bf92",
			snonce:      "3rfcNHYJY1ZVvWVs7j",
			clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
		{
			name:        "RFC 7677 SCRAM-SHA-256",
			mech:        SCRAMSHA256,
			hash:        SHA256,
			salt:        "W22ZaJ0SNY7soEsUEjb6gQ==",
			snonce:      "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
			clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			serverFirst: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			salt, err := base64.StdEncoding.DecodeString(tt.salt)
			if err != nil {
				t.Fatal(err)
			}
			cred, err := deriveCredential(tt.hash, "pencil", salt, 4096)
			if err != nil {
				t.Fatal(err)
			}
			auth := &testAuth{creds: map[string]map[Hash]Credential{"user": {tt.hash: cred}}}
			s := newServer(t, tt.mech, auth, ChannelBinding{}, Mechanisms(false, ChannelBinding{}), tt.snonce)
			ctx := context.Background()

			got, done, err := s.Step(ctx, []byte(tt.clientFirst))
			if err != nil || done {
				t.Fatalf("Step(client-first) = %q, %v, %v", got, done, err)
			}
			if string(got) != tt.serverFirst {
				t.Fatalf("server-first-message = %q, want %q", got, tt.serverFirst)
			}
			got, done, err = s.Step(ctx, []byte(tt.clientFinal))
			if err != nil || !done {
				t.Fatalf("Step(client-final) = %q, %v, %v", got, done, err)
			}
			if string(got) != tt.serverFinal {
				t.Fatalf("server-final-message = %q, want %q", got, tt.serverFinal)
			}
			if s.Username() != "user" || s.Authzid() != "" {
				t.Errorf("Username, Authzid = %q, %q; want \"user\", \"\"", s.Username(), s.Authzid())
			}
			if !VerifyPlainWithCredential(cred, "pencil") {
				t.Error("VerifyPlainWithCredential(vector credential, pencil) = false")
			}
		})
	}
}

// scramCase is one SCRAM exchange that should fail.
type scramCase struct {
	name     string
	mech     string         // default SCRAM-SHA-256
	offered  []string       // default Mechanisms(true, cb)
	serverCB ChannelBinding // default none
	client   testClient     // hash defaults to the mechanism's, user to "user", password to "pencil"
	first    func(string) string
	final    func(string) string
	failAt   int // 1: client-first, 2: client-final
	cond     string
	scramErr string
	cause    error
}

var (
	cbData  = bytes.Repeat([]byte{0xa5}, 32)
	otherCB = bytes.Repeat([]byte{0x5a}, 32)
	tlsCB   = ChannelBinding{Type: TypeTLSExporter, Data: cbData}
)

func TestSCRAMFailures(t *testing.T) {
	plusOffered := Mechanisms(true, tlsCB)
	noPlus := Mechanisms(true, ChannelBinding{})
	replace := func(old, new string) func(string) string {
		return func(s string) string { return strings.Replace(s, old, new, 1) }
	}
	tests := []scramCase{
		{name: "wrong password", client: testClient{password: "pencil2"},
			failAt: 2, cond: ConditionNotAuthorized, scramErr: scramInvalidProof, cause: ErrBadPassword},
		{name: "unknown user", client: testClient{user: "nobody"},
			failAt: 2, cond: ConditionNotAuthorized, scramErr: scramInvalidProof, cause: ErrUnknownUser},
		{name: "directory account cannot do SCRAM", client: testClient{user: "dir", password: "secret"},
			failAt: 2, cond: ConditionNotAuthorized, scramErr: scramInvalidProof, cause: ErrNoSCRAM},
		{name: "disabled account, right password", client: testClient{user: "off"},
			failAt: 2, cond: ConditionAccountDisabled, scramErr: scramOtherError, cause: ErrDisabled},
		{name: "disabled account, wrong password", client: testClient{user: "off", password: "x"},
			failAt: 2, cond: ConditionNotAuthorized, scramErr: scramInvalidProof, cause: ErrBadPassword},
		{name: "tampered proof", final: func(s string) string {
			i := strings.LastIndex(s, "p=") + 2
			p, _ := base64.StdEncoding.DecodeString(s[i:])
			p[0] ^= 1
			return s[:i] + base64.StdEncoding.EncodeToString(p)
		}, failAt: 2, cond: ConditionNotAuthorized, scramErr: scramInvalidProof, cause: ErrBadPassword},
		{name: "tampered nonce", final: replace(",r=fyko", ",r=Fyko"),
			failAt: 2, cond: ConditionNotAuthorized, scramErr: scramOtherError},
		{name: "truncated nonce", final: func(s string) string {
			i := strings.Index(s, ",p=")
			return s[:i-1] + s[i:]
		}, failAt: 2, cond: ConditionNotAuthorized, scramErr: scramOtherError},
		{name: "wrong channel binding data", mech: SCRAMSHA256Plus, serverCB: tlsCB,
			client: testClient{gs2: "p=tls-exporter,,", cbData: otherCB},
			failAt: 2, cond: ConditionNotAuthorized, scramErr: scramChannelBindingsMismatch},
		{name: "channel binding data missing from c=", mech: SCRAMSHA256Plus, serverCB: tlsCB,
			client: testClient{gs2: "p=tls-exporter,,"},
			failAt: 2, cond: ConditionNotAuthorized, scramErr: scramChannelBindingsMismatch},
		{name: "GS2 header in c= differs from client-first", client: testClient{gs2: "n,,", cbGS2: "y,,"},
			offered: noPlus, failAt: 2, cond: ConditionNotAuthorized, scramErr: scramChannelBindingsMismatch},
		{name: "authzid dropped from c=", client: testClient{gs2: "n,a=admin,", cbGS2: "n,,"},
			failAt: 2, cond: ConditionNotAuthorized, scramErr: scramChannelBindingsMismatch},
		{name: "downgrade: y while PLUS advertised", client: testClient{gs2: "y,,"}, offered: plusOffered,
			serverCB: tlsCB, failAt: 1, cond: ConditionNotAuthorized, scramErr: scramServerDoesSupportCB},
		{name: "downgrade: y while SHA-1-PLUS advertised", mech: SCRAMSHA1, client: testClient{gs2: "y,,"},
			offered: []string{SCRAMSHA1Plus, SCRAMSHA1}, serverCB: tlsCB,
			failAt: 1, cond: ConditionNotAuthorized, scramErr: scramServerDoesSupportCB},
		{name: "p= when PLUS not offered", client: testClient{gs2: "p=tls-exporter,,", cbData: cbData},
			offered: noPlus, failAt: 1, cond: ConditionMalformedRequest, scramErr: scramCBNotSupported},
		{name: "p= with a non-PLUS mechanism", client: testClient{gs2: "p=tls-exporter,,", cbData: cbData},
			offered: plusOffered, serverCB: tlsCB, failAt: 1, cond: ConditionMalformedRequest, scramErr: scramOtherError},
		{name: "PLUS mechanism with n", mech: SCRAMSHA256Plus, serverCB: tlsCB, client: testClient{gs2: "n,,"},
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramOtherError},
		{name: "PLUS mechanism with y", mech: SCRAMSHA1Plus, serverCB: tlsCB, client: testClient{gs2: "y,,"},
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramOtherError},
		{name: "PLUS mechanism with tls-unique", mech: SCRAMSHA256Plus, serverCB: tlsCB,
			client: testClient{gs2: "p=tls-unique,,"},
			failAt: 1, cond: ConditionNotAuthorized, scramErr: scramUnsupportedCBType},
		{name: "mandatory extension", first: replace("n=user", "m=ext,n=user"),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramExtensionsNotSupported},
		{name: "username with bare =", first: replace("n=user", "n=us=er"),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidUsernameEncoding},
		{name: "username with =2c (lower case)", first: replace("n=user", "n=us=2cer"),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidUsernameEncoding},
		{name: "username ending in =3", first: replace("n=user", "n=user=3"),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidUsernameEncoding},
		{name: "empty username", first: replace("n=user", "n="),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidUsernameEncoding},
		{name: "username too long", first: replace("n=user", "n="+strings.Repeat("u", 1024)),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidUsernameEncoding},
		{name: "authzid with bad escape", client: testClient{gs2: "n,a=ad=min,"},
			failAt: 1, cond: ConditionInvalidAuthzid, scramErr: scramInvalidEncoding},
		{name: "authzid without a=", client: testClient{gs2: "n,admin,"},
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "unknown flag", client: testClient{gs2: "x,,"},
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "bad cb-name", mech: SCRAMSHA256Plus, serverCB: tlsCB, client: testClient{gs2: "p=tls_exporter,,"},
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "no GS2 header", first: replace("n,,", ""),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "missing nonce", first: replace(",r=fyko+d2lbbFgONRv9qkxdawL", ""),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "empty nonce", first: replace("r=fyko+d2lbbFgONRv9qkxdawL", "r="),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "nonce with a space", first: replace("r=fyko+", "r=fyko "),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "nonce too long", first: replace("r=fyko+", "r="+strings.Repeat("x", 300)),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "attributes swapped", first: replace("n=user,r=fyko+d2lbbFgONRv9qkxdawL", "r=fyko+d2lbbFgONRv9qkxdawL,n=user"),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "bad extension in client-first", first: func(s string) string { return s + ",=x" },
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "NUL in client-first", first: replace("user", "us\x00er"),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "invalid UTF-8 in client-first", first: replace("user", "us\xffer"),
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "empty client-first", first: func(string) string { return "" },
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "oversize client-first", first: func(s string) string { return s + ",x=" + strings.Repeat("a", MaxMessageSize) },
			failAt: 1, cond: ConditionMalformedRequest, scramErr: scramOtherError},
		{name: "oversize client-final", final: func(s string) string { return "x=" + strings.Repeat("a", MaxMessageSize) + "," + s },
			failAt: 2, cond: ConditionMalformedRequest, scramErr: scramOtherError},
		{name: "c= not base64", final: replace("c=biws", "c=bi!s"),
			failAt: 2, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "c= with a line break", final: replace("c=biws", "c=bi\nws"),
			failAt: 2, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "c= missing", final: replace("c=biws,", ""),
			failAt: 2, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "proof not last", final: func(s string) string { return s + ",x=1" },
			failAt: 2, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "proof too short", final: func(s string) string { return s[:strings.LastIndex(s, "p=")] + "p=AAAA" },
			failAt: 2, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "second proof as extension", final: func(s string) string {
			i := strings.LastIndex(s, ",p=")
			return s[:i] + s[i:] + s[i:]
		}, failAt: 2, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
		{name: "empty client-final", final: func(string) string { return "" },
			failAt: 2, cond: ConditionMalformedRequest, scramErr: scramInvalidEncoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runFailingSCRAM(t, tt)
		})
	}
}

func runFailingSCRAM(t *testing.T, tt scramCase) {
	t.Helper()
	if tt.mech == "" {
		tt.mech = SCRAMSHA256
	}
	if tt.offered == nil {
		tt.offered = Mechanisms(true, tt.serverCB)
	}
	c := tt.client
	c.hash = mechanisms[tt.mech].hash
	if c.user == "" {
		c.user = "user"
	}
	if c.password == "" {
		c.password = "pencil"
	}
	s := newServer(t, tt.mech, newTestAuth(t), tt.serverCB, tt.offered, "")
	ctx := context.Background()

	first := string(c.first())
	if tt.first != nil {
		first = tt.first(first)
	}
	serverFirst, done, err := s.Step(ctx, []byte(first))
	if tt.failAt == 1 {
		wantFailure(t, err, tt.cond, tt.scramErr, tt.cause)
		if serverFirst != nil || done {
			t.Errorf("failed Step returned %q, %v", serverFirst, done)
		}
		return
	}
	if err != nil {
		t.Fatalf("Step(client-first %q): %v", first, err)
	}
	final := string(c.final(t, serverFirst))
	if tt.final != nil {
		final = tt.final(final)
	}
	serverFinal, done, err := s.Step(ctx, []byte(final))
	wantFailure(t, err, tt.cond, tt.scramErr, tt.cause)
	if serverFinal != nil || done || s.Username() != "" {
		t.Errorf("failed Step returned %q, %v; Username %q", serverFinal, done, s.Username())
	}
	// The exchange is over.
	if _, _, err := s.Step(ctx, []byte(final)); err == nil {
		t.Error("Step after failure succeeded")
	}
}

// TestSCRAMSuccess runs complete exchanges with the test client.
func TestSCRAMSuccess(t *testing.T) {
	tests := []struct {
		name        string
		mech        string
		offered     []string
		serverCB    ChannelBinding
		client      testClient
		user        string // registered username, if not c.user
		noInitial   bool   // <auth/> without initial response
		wantAuthzid string
	}{
		{name: "SCRAM-SHA-256", mech: SCRAMSHA256},
		{name: "SCRAM-SHA-1", mech: SCRAMSHA1},
		{name: "SCRAM-SHA-256-PLUS", mech: SCRAMSHA256Plus, serverCB: tlsCB,
			client: testClient{gs2: "p=tls-exporter,,", cbData: cbData}},
		{name: "SCRAM-SHA-1-PLUS", mech: SCRAMSHA1Plus, serverCB: tlsCB,
			client: testClient{gs2: "p=tls-exporter,,", cbData: cbData}},
		{name: "n while PLUS advertised", mech: SCRAMSHA256, serverCB: tlsCB, client: testClient{gs2: "n,,"}},
		{name: "y while PLUS not advertised", mech: SCRAMSHA256, client: testClient{gs2: "y,,"}},
		{name: "authzid", mech: SCRAMSHA256, client: testClient{gs2: "n,a=admin@example.com=2Cx,"},
			wantAuthzid: "admin@example.com,x"},
		{name: "escaped username", mech: SCRAMSHA256, client: testClient{user: "a=b,c"}},
		{name: "non-ASCII username and password", mech: SCRAMSHA256, client: testClient{user: "jürgen", password: "pässwört"}},
		{name: "no initial response", mech: SCRAMSHA1, noInitial: true},
		{name: "extensions ignored", mech: SCRAMSHA256, client: testClient{firstExt: ",x=ext=ension", finalExt: ",y=z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offered := tt.offered
			if offered == nil {
				offered = Mechanisms(true, tt.serverCB)
			}
			c := tt.client
			c.hash = mechanisms[tt.mech].hash
			if c.user == "" {
				c.user = "user"
			}
			if c.password == "" {
				c.password = "pencil"
			}
			auth := newTestAuth(t)
			auth.add(t, c.user, c.password)
			s := newServer(t, tt.mech, auth, tt.serverCB, offered, "")
			ctx := context.Background()
			if tt.noInitial {
				ch, done, err := s.Step(ctx, nil)
				if err != nil || done || ch == nil || len(ch) != 0 {
					t.Fatalf("Step(nil) = %q, %v, %v; want empty challenge", ch, done, err)
				}
			}
			serverFirst, done, err := s.Step(ctx, c.first())
			if err != nil || done {
				t.Fatalf("Step(client-first) = %q, %v, %v", serverFirst, done, err)
			}
			final := c.final(t, serverFirst)
			serverFinal, done, err := s.Step(ctx, final)
			if err != nil || !done {
				t.Fatalf("Step(client-final) = %q, %v, %v", serverFinal, done, err)
			}
			c.verifyServerFinal(t, serverFinal)
			if s.Username() != c.user || s.Authzid() != tt.wantAuthzid {
				t.Errorf("Username, Authzid = %q, %q; want %q, %q", s.Username(), s.Authzid(), c.user, tt.wantAuthzid)
			}
			if _, _, err := s.Step(ctx, final); err == nil {
				t.Error("Step after success succeeded")
			}
		})
	}
}

// TestUnknownUserIndistinguishable checks what a client sees of an account
// that does not exist: a salt and iteration count shaped like a real one,
// stable across attempts and letter case, and the same failure as a wrong
// password.
func TestUnknownUserIndistinguishable(t *testing.T) {
	ctx := context.Background()
	auth := newTestAuth(t)
	serverFirst := func(t *testing.T, mech, user string, opts ...Option) (salt []byte, iter string) {
		t.Helper()
		s, err := NewServer(mech, auth, ChannelBinding{}, Mechanisms(true, ChannelBinding{}), opts...)
		if err != nil {
			t.Fatal(err)
		}
		c := testClient{user: user}
		msg, _, err := s.Step(ctx, c.first())
		if err != nil {
			t.Fatalf("Step(client-first) for %q: %v", user, err)
		}
		fields := strings.Split(string(msg), ",")
		if len(fields) != 3 {
			t.Fatalf("server-first-message %q", msg)
		}
		salt, err = base64.StdEncoding.DecodeString(strings.TrimPrefix(fields[1], "s="))
		if err != nil {
			t.Fatal(err)
		}
		return salt, fields[2]
	}
	secret := WithSecret(testSecret)

	realSalt, realIter := serverFirst(t, SCRAMSHA256, "user", secret)
	fakeSalt, fakeIter := serverFirst(t, SCRAMSHA256, "nobody", secret)
	if len(fakeSalt) != len(realSalt) || fakeIter != realIter {
		t.Errorf("unknown user gets salt of %d bytes and %s, real user %d bytes and %s",
			len(fakeSalt), fakeIter, len(realSalt), realIter)
	}
	again, _ := serverFirst(t, SCRAMSHA256, "nobody", secret)
	if !bytes.Equal(again, fakeSalt) {
		t.Error("unknown user's salt changes between attempts")
	}
	folded, _ := serverFirst(t, SCRAMSHA256, "NoBody", secret)
	if !bytes.Equal(folded, fakeSalt) {
		t.Error("unknown user's salt depends on letter case")
	}
	other, _ := serverFirst(t, SCRAMSHA256, "somebody", secret)
	if bytes.Equal(other, fakeSalt) {
		t.Error("two unknown users share a salt")
	}
	sha1Salt, _ := serverFirst(t, SCRAMSHA1, "nobody", secret)
	if bytes.Equal(sha1Salt, fakeSalt) {
		t.Error("unknown user has the same salt for SHA-1 and SHA-256")
	}
	otherSecret, _ := serverFirst(t, SCRAMSHA256, "nobody", WithSecret(bytes.Repeat([]byte{7}, 32)))
	if bytes.Equal(otherSecret, fakeSalt) {
		t.Error("salt does not depend on the secret")
	}
	if _, it := serverFirst(t, SCRAMSHA256, "nobody", secret, WithIterations(8192)); it != "i=8192" {
		t.Errorf("WithIterations(8192): unknown user gets %s", it)
	}

	// The failure a client sees is the same, field for field.
	client := func(user, password string) *Failure {
		s := newServer(t, SCRAMSHA256, auth, ChannelBinding{}, Mechanisms(true, ChannelBinding{}), "")
		c := testClient{hash: SHA256, user: user, password: password}
		msg, _, err := s.Step(ctx, c.first())
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Step(ctx, c.final(t, msg))
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("error %v is not a *Failure", err)
		}
		return f
	}
	wrong, unknown, noSCRAM := client("user", "x"), client("nobody", "x"), client("dir", "secret")
	for _, f := range []*Failure{unknown, noSCRAM} {
		if f.Condition != wrong.Condition || f.Text != wrong.Text || f.SCRAMError != wrong.SCRAMError {
			t.Errorf("failure %+v differs from wrong password's %+v", f, wrong)
		}
	}
}

func TestSCRAMBackendErrors(t *testing.T) {
	ctx := context.Background()
	backend := errors.New("database is down")
	auth := newTestAuth(t)
	auth.err = backend
	s := newServer(t, SCRAMSHA256, auth, ChannelBinding{}, Mechanisms(true, ChannelBinding{}), "")
	c := testClient{hash: SHA256, user: "user", password: "pencil"}
	_, _, err := s.Step(ctx, c.first())
	wantFailure(t, err, ConditionTemporaryAuthFailure, scramOtherError, backend)

	// A malformed stored credential is a server fault, not a login failure.
	bad := &testAuth{creds: map[string]map[Hash]Credential{"user": {SHA256: {Hash: SHA256, Salt: []byte{1}, Iterations: 4096, StoredKey: []byte{1}}}}}
	s = newServer(t, SCRAMSHA256, bad, ChannelBinding{}, Mechanisms(true, ChannelBinding{}), "")
	_, _, err = s.Step(ctx, c.first())
	wantFailure(t, err, ConditionTemporaryAuthFailure, scramOtherError, nil)

	// A cancelled context stops the exchange before the backend is asked.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	auth = newTestAuth(t)
	s = newServer(t, SCRAMSHA256, auth, ChannelBinding{}, Mechanisms(true, ChannelBinding{}), "")
	_, _, err = s.Step(cctx, c.first())
	wantFailure(t, err, ConditionTemporaryAuthFailure, "-", context.Canceled)
	if auth.calls != 0 {
		t.Errorf("Authenticator called %d times with a cancelled context", auth.calls)
	}
}

func TestDecodeSASLName(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "user", "user", true},
		{"comma", "a=2Cb", "a,b", true},
		{"equals", "a=3Db", "a=b", true},
		{"both at the ends", "=2Cx=3D", ",x=", true},
		{"escaped escape", "=3D2C", "=2C", true},
		{"non-ASCII", "jürgen", "jürgen", true},
		{"empty", "", "", false},
		{"bare equals", "a=b", "", false},
		{"lower-case hex", "a=2cb", "", false},
		{"truncated", "ab=2", "", false},
		{"trailing equals", "ab=", "", false},
		{"other escape", "a=41", "", false},
		{"bare comma", "a,b", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := decodeSASLName(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("decodeSASLName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
			if ok {
				if back := encodeSASLName(got); back != tt.in {
					t.Errorf("encodeSASLName(%q) = %q, want %q", got, back, tt.in)
				}
			}
		})
	}
}
