package gdpr

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzImport feeds arbitrary documents to the XEP-0227 reader on a real
// store (SQLite): it must never panic, whatever it refuses.
func FuzzImport(f *testing.F) {
	f.Add([]byte(`<?xml version='1.0'?><server-data xmlns='urn:xmpp:pie:0'><host jid='example.com'><user name='alice'>` +
		`<query xmlns='jabber:iq:roster'><item jid='bob@example.com' subscription='both'><group>G</group></item></query>` +
		`<vCard xmlns='vcard-temp'><FN>A</FN></vCard><blocklist xmlns='urn:xmpp:blocking'><item jid='x@y'/></blocklist>` +
		`<archive xmlns='urn:xmpp:pie:0#mam'><result xmlns='urn:xmpp:mam:2' id='x'><forwarded xmlns='urn:xmpp:forward:0'>` +
		`<message xmlns='jabber:client' from='bob@example.com' to='alice@example.com'><body>hi</body></message></forwarded></result></archive>` +
		`</user></host></server-data>`))
	f.Add([]byte(`<server-data xmlns='urn:xmpp:pie:0'><host jid='a'><user name=''/></host></server-data>`))
	b := openBackend(f, "sqlite")
	tool := &Tool{Store: b.st}
	f.Fuzz(func(t *testing.T, doc []byte) {
		r := io.NewSectionReader(strings.NewReader(string(doc)), 0, int64(len(doc)))
		_, _ = tool.Import(context.Background(), r)
	})
}

// FuzzReadErasureLog: any file content is read or refused, never a panic.
func FuzzReadErasureLog(f *testing.F) {
	f.Add([]byte(`{"v":1,"event":"started","job":"e-1","subject":"a@b","at":"2026-01-01T00:00:00Z"}` + "\n" +
		`{"v":1,"event":"completed","job":"e-1","subject":"a@b","at":"2026-01-01T00:00:01Z"}` + "\n"))
	f.Add([]byte("not json\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "erasures.log")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		recs, err := ReadErasureLog(p)
		if err == nil {
			for _, r := range recs {
				if r.Subject == "" {
					t.Fatalf("a record without subject: %+v", recs)
				}
			}
		}
	})
}
