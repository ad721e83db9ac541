package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// tlsConfig loads the configured certificate or, when none is configured,
// a self-signed one from the data directory, generating it on first start
// (or when the domains changed). It returns the config and a line that
// describes the certificate for the start-up banner.
func tlsConfig(cfg *Config) (*tls.Config, string, error) {
	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile
	selfSigned := certFile == ""
	if selfSigned {
		dir := filepath.Join(cfg.DataDir, "tls")
		certFile, keyFile = filepath.Join(dir, "selfsigned.crt"), filepath.Join(dir, "selfsigned.key")
		if err := ensureSelfSigned(certFile, keyFile, cfg.Domains); err != nil {
			return nil, "", err
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("tls: %w", err)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	desc := fmt.Sprintf("certificate %s (SHA-256 %s)", certFile, hex.EncodeToString(sum[:]))
	if selfSigned {
		desc = "self-signed " + desc + "; clients will ask you to trust it"
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// Offer XMPP over TLS for ALPN-aware clients (XEP-0368).
		NextProtos: []string{"xmpp-client"},
	}, desc, nil
}

// ensureSelfSigned writes an ECDSA P-256 certificate valid for the domains
// (and their conference/upload subdomains later) unless a current one
// exists.
func ensureSelfSigned(certFile, keyFile string, domains []string) error {
	if pem, err := os.ReadFile(certFile); err == nil {
		if c, err := parseCert(pem); err == nil && time.Now().Before(c.NotAfter.Add(-30*24*time.Hour)) && coversAll(c, domains) {
			if _, err := os.Stat(keyFile); err == nil {
				return nil
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domains[0], Organization: []string{"Kontor self-signed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, d := range domains {
		if ip := net.ParseIP(d); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, d)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

func coversAll(c *x509.Certificate, domains []string) bool {
	for _, d := range domains {
		if !slices.Contains(c.DNSNames, d) && c.VerifyHostname(d) != nil {
			return false
		}
	}
	return true
}
