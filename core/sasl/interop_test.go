package sasl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	msasl "mellium.im/sasl"
)

// tlsPair runs a TLS handshake of the given version over net.Pipe with a
// fresh self-signed certificate and returns both ends' connection state.
func tlsPair(t *testing.T, version uint16) (client, server tls.ConnectionState) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kontor.test"},
		DNSNames:     []string{"kontor.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)

	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	deadline := time.Now().Add(10 * time.Second)
	c1.SetDeadline(deadline)
	c2.SetDeadline(deadline)
	srv := tls.Server(c1, &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   version,
		MaxVersion:   version,
	})
	cli := tls.Client(c2, &tls.Config{
		ServerName: "kontor.test",
		RootCAs:    roots,
		MinVersion: version,
		MaxVersion: version,
	})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	return cli.ConnectionState(), srv.ConnectionState()
}

// TestInteropMellium runs complete exchanges between mellium.im/sasl's
// client mechanisms and our Server.
func TestInteropMellium(t *testing.T) {
	tls13Client, tls13Server := tlsPair(t, tls.VersionTLS13)
	_, otherServer := tlsPair(t, tls.VersionTLS13)
	cb := TLSExporter(&tls13Server)
	if cb.Type != TypeTLSExporter {
		t.Fatal("no tls-exporter binding on a TLS 1.3 connection")
	}

	tests := []struct {
		name      string
		mech      msasl.Mechanism
		user      string
		password  string
		authzid   string
		clientTLS *tls.ConnectionState // given to the client
		serverCB  ChannelBinding       // what our TLS layer reports
		cond      string               // "" for success
	}{
		{name: "SCRAM-SHA-256", mech: msasl.ScramSha256, user: "user", password: "pencil"},
		{name: "SCRAM-SHA-1", mech: msasl.ScramSha1, user: "user", password: "pencil"},
		{name: "SCRAM-SHA-256 over TLS 1.3 without binding", mech: msasl.ScramSha256, user: "user", password: "pencil",
			clientTLS: &tls13Client, serverCB: cb},
		{name: "SCRAM-SHA-256-PLUS", mech: msasl.ScramSha256Plus, user: "user", password: "pencil",
			clientTLS: &tls13Client, serverCB: cb},
		{name: "SCRAM-SHA-1-PLUS", mech: msasl.ScramSha1Plus, user: "user", password: "pencil",
			clientTLS: &tls13Client, serverCB: cb},
		{name: "SCRAM-SHA-256-PLUS with authzid", mech: msasl.ScramSha256Plus, user: "user", password: "pencil",
			authzid: "admin@example.com", clientTLS: &tls13Client, serverCB: cb},
		{name: "SCRAM-SHA-256 with escaped username", mech: msasl.ScramSha256, user: "us=er,1", password: "pencil"},
		{name: "PLAIN", mech: msasl.Plain, user: "user", password: "pencil", clientTLS: &tls13Client, serverCB: cb},
		{name: "PLAIN with authzid", mech: msasl.Plain, user: "dir", password: "secret", authzid: "admin@example.com",
			clientTLS: &tls13Client, serverCB: cb},

		{name: "SCRAM-SHA-256 wrong password", mech: msasl.ScramSha256, user: "user", password: "pencil2",
			cond: ConditionNotAuthorized},
		{name: "SCRAM-SHA-1 unknown user", mech: msasl.ScramSha1, user: "nobody", password: "pencil",
			cond: ConditionNotAuthorized},
		{name: "SCRAM-SHA-256-PLUS across two connections", mech: msasl.ScramSha256Plus, user: "user", password: "pencil",
			clientTLS: &tls13Client, serverCB: TLSExporter(&otherServer), cond: ConditionNotAuthorized},
		{name: "PLAIN wrong password", mech: msasl.Plain, user: "user", password: "x",
			clientTLS: &tls13Client, serverCB: cb, cond: ConditionNotAuthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			auth := newTestAuth(t)
			auth.add(t, "us=er,1", "pencil")
			offered := Mechanisms(tt.clientTLS != nil, tt.serverCB)
			opts := []msasl.Option{
				msasl.Credentials(func() ([]byte, []byte, []byte) {
					return []byte(tt.user), []byte(tt.password), []byte(tt.authzid)
				}),
				msasl.RemoteMechanisms(offered...),
			}
			if tt.clientTLS != nil {
				opts = append(opts, msasl.TLSState(*tt.clientTLS))
			}
			client := msasl.NewClient(tt.mech, opts...)
			s, err := NewServer(tt.mech.Name, auth, tt.serverCB, offered, WithSecret(testSecret))
			if err != nil {
				t.Fatalf("NewServer(%s): %v", tt.mech.Name, err)
			}

			more, resp, err := client.Step(nil)
			if err != nil {
				t.Fatalf("client initial response: %v", err)
			}
			var serverErr error
			for i := 0; ; i++ {
				if i > 3 {
					t.Fatal("exchange does not end")
				}
				challenge, done, err := s.Step(ctx, resp)
				if err != nil {
					serverErr = err
					break
				}
				if done {
					if more {
						// The client checks the server-final-message.
						if _, _, err := client.Step(challenge); err != nil {
							t.Fatalf("client rejects server-final-message %q: %v", challenge, err)
						}
					} else if challenge != nil {
						t.Fatalf("additional data %q for a mechanism without it", challenge)
					}
					break
				}
				more, resp, err = client.Step(challenge)
				if err != nil {
					t.Fatalf("client rejects challenge %q: %v", challenge, err)
				}
			}
			if tt.cond == "" {
				if serverErr != nil {
					t.Fatalf("server: %v", serverErr)
				}
				if s.Username() != tt.user || s.Authzid() != tt.authzid {
					t.Errorf("Username, Authzid = %q, %q; want %q, %q", s.Username(), s.Authzid(), tt.user, tt.authzid)
				}
				if plus := strings.HasSuffix(tt.mech.Name, "-PLUS"); plus != (s.cbFlag == 'p') {
					t.Errorf("GS2 flag %q for %s", s.cbFlag, tt.mech.Name)
				}
				return
			}
			var f *Failure
			if !errors.As(serverErr, &f) || f.Condition != tt.cond {
				t.Fatalf("server error = %v, want condition %s", serverErr, tt.cond)
			}
		})
	}
}
