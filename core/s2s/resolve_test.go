package s2s

import (
	"context"
	"net"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

type srvRecord struct {
	prio   uint16
	port   uint16
	target string
}

// testResolver answers SRV questions from records (by name), over UDP on
// loopback, and NXDOMAIN for everything else.
func testResolver(t *testing.T, records map[string][]srvRecord) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
				RecursionDesired: h.RecursionDesired, RCode: dnsmessage.RCodeNameError}, Questions: []dnsmessage.Question{q}}
			if recs, ok := records[strings.ToLower(q.Name.String())]; ok && q.Type == dnsmessage.TypeSRV {
				resp.RCode = dnsmessage.RCodeSuccess
				for _, r := range recs {
					resp.Answers = append(resp.Answers, dnsmessage.Resource{
						Header: dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1},
						Body:   &dnsmessage.SRVResource{Priority: r.prio, Port: r.port, Target: dnsmessage.MustNewName(r.target)}})
				}
			}
			if out, err := resp.Pack(); err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// TestTargetsSRV: SRV records of both services (XEP-0368) are tried by
// priority, direct TLS first among equals; a lone "." target means the
// domain offers no XMPP service.
func TestTargetsSRV(t *testing.T) {
	res := testResolver(t, map[string][]srvRecord{
		"_xmpps-server._tcp.x.example.":   {{prio: 10, port: 5270, target: "tls.x.example."}},
		"_xmpp-server._tcp.x.example.":    {{prio: 5, port: 5269, target: "primary.x.example."}, {prio: 10, port: 5269, target: "backup.x.example."}},
		"_xmpp-server._tcp.none.example.": {{target: "."}},
	})
	s := &Service{cfg: Config{Resolver: res}}
	s.cfg.defaults()
	got, err := s.targets(context.Background(), "x.example")
	if err != nil {
		t.Fatal(err)
	}
	want := []target{{addr: "primary.x.example:5269"}, {addr: "tls.x.example:5270", direct: true}, {addr: "backup.x.example:5269"}}
	if len(got) != len(want) {
		t.Fatalf("targets %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("target %d: %v, want %v", i, got[i], want[i])
		}
	}
	if got, err := s.targets(context.Background(), "none.example"); err == nil {
		t.Errorf("SRV target '.': %v, want an error", got)
	}
	got, err = s.targets(context.Background(), "plain.example")
	if err != nil || len(got) != 1 || got[0] != (target{addr: "plain.example:5269"}) {
		t.Errorf("no SRV records: %v, %v, want plain.example:5269", got, err)
	}
}
