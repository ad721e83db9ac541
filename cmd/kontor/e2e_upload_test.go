package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/mod/upload"
	"kontor.im/kontor/core/storage"
)

// noRetentionRules replaces the bundle's upload policy: uploads are
// allowed and the policy names no retention rule, so the upload module's
// retention option applies (a policy counts in days; this test cannot
// wait that long).
const noRetentionRules = `package kontor.upload

decision := {"allow": true, "reason": "test", "max_size": 0, "content_types": [], "rules": [], "obligations": {}}
`

// TestE2EUpload runs XEP-0363 against the server's HTTPS listener, on both
// backends: alice (mellium.im/xmpp, over TLS) asks for a slot, PUTs a file
// and sends bob the GET URL; bob downloads it, whole and a range; after the
// file's retention has passed it is a 404, and so is a second file after
// alice's files were deleted through the Go API that erasure uses.
func TestE2EUpload(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		pdir := t.TempDir()
		if err := os.WriteFile(filepath.Join(pdir, "upload.rego"), []byte(noRetentionRules), 0o600); err != nil {
			t.Fatal(err)
		}
		ts := startTestServer(t, backend, func(c *Config) {
			c.Modules.Enabled = append(defaultModuleIDs(), "upload")
			c.Modules.Options = map[string]any{"upload": map[string]any{"retention": "3s"}}
			c.Policy.Dir = pdir
		})
		ts.addUser(t, "alice", "password-alice")
		ts.addUser(t, "bob", "password-bob")
		alice := ts.dial(t, "alice", "password-alice")
		bob := ts.dial(t, "bob", "password-bob")
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ts.tlsConfig()}, Timeout: e2eWait}

		content := make([]byte, 300<<10)
		rand.Read(content)
		slot := func(name string, size int) (put, get string) {
			t.Helper()
			r := alice.iq(t, "<iq type='get' to='"+e2eDomain+"'><request xmlns='"+upload.NS+"' filename='"+name+
				"' size='"+strconv.Itoa(size)+"' content-type='application/pdf'/></iq>")
			s := r.child(upload.NS, "slot")
			if s == nil || s.child(upload.NS, "put") == nil || s.child(upload.NS, "get") == nil {
				t.Fatalf("no slot: %+v", r)
			}
			return s.child(upload.NS, "put").attr("url"), s.child(upload.NS, "get").attr("url")
		}
		send := func(method, url string, body []byte, hdr ...string) (*http.Response, []byte) {
			t.Helper()
			req, err := http.NewRequest(method, url, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			return resp, b
		}
		put, get := slot("bericht.pdf", len(content))
		if resp, _ := send(http.MethodPut, put, content, "Content-Type", "application/pdf"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %s", resp.Status)
		}
		alice.chat(t, bob.JID().String(), get)
		msg := bob.Messages.expect(t, "the URL from alice", func(n xmlNode) bool { return n.body() == get })
		if resp, b := send(http.MethodGet, msg.body(), nil); resp.StatusCode != 200 || !bytes.Equal(b, content) {
			t.Fatalf("bob's GET: %s, %d bytes", resp.Status, len(b))
		}
		if resp, b := send(http.MethodGet, get, nil, "Range", "bytes=100000-"); resp.StatusCode != 206 || !bytes.Equal(b, content[100000:]) {
			t.Fatalf("resumed GET: %s, %d bytes", resp.Status, len(b))
		}

		// A second file, deleted with the owner's files.
		put2, get2 := slot("zwei.pdf", 10)
		if resp, _ := send(http.MethodPut, put2, content[:10]); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %s", resp.Status)
		}
		files := &upload.Files{Store: ts.srv.store.(storage.Uploads), Dir: filepath.Join(ts.cfg.DataDir, "uploads")}
		if n, err := files.DeleteOwner(t.Context(), bare("alice")); err != nil || n != 2 {
			t.Fatalf("DeleteOwner = %d, %v", n, err)
		}
		if resp, _ := send(http.MethodGet, get2, nil); resp.StatusCode != 404 {
			t.Errorf("GET after the owner's files were deleted: %s, want 404", resp.Status)
		}

		// A third file outlives its retention (3s).
		granted := time.Now()
		put3, get3 := slot("drei.pdf", 10)
		if resp, _ := send(http.MethodPut, put3, content[:10]); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %s", resp.Status)
		}
		if resp, _ := send(http.MethodGet, get3, nil); resp.StatusCode != 200 {
			t.Fatalf("GET within retention: %s", resp.Status)
		}
		time.Sleep(time.Until(granted.Add(3*time.Second + 200*time.Millisecond)))
		if resp, _ := send(http.MethodGet, get3, nil); resp.StatusCode != 404 {
			t.Errorf("GET after retention: %s, want 404", resp.Status)
		}
	})
}

// TestE2EUploadPolicy: with the shipped policy, a slot request asks the
// upload.request decision: a file gets the retention class and deletion
// date a message of the uploader's would (internal, 90 days), and a
// refusal (here a disabled account's, decided by a policy file) is
// not-allowed with the policy's message.
func TestE2EUploadPolicy(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		pdir := t.TempDir()
		deny := `package kontor.upload

deny contains {"reason": "no_uploads_for_bob", "message": "Bob may not upload."} if input.from.jid == "bob@localhost"
`
		if err := os.WriteFile(filepath.Join(pdir, "bob.rego"), []byte(deny), 0o600); err != nil {
			t.Fatal(err)
		}
		ts := startTestServer(t, backend, func(c *Config) {
			c.Modules.Enabled = append(defaultModuleIDs(), "upload")
			c.Policy.Dir = pdir
		})
		ts.addUser(t, "alice", "password-alice")
		ts.addUser(t, "bob", "password-bob")
		alice := ts.dial(t, "alice", "password-alice")
		bob := ts.dial(t, "bob", "password-bob")
		req := "<iq type='get' to='" + e2eDomain + "'><request xmlns='" + upload.NS + "' filename='a.pdf' size='10' content-type='application/pdf'/></iq>"
		granted := time.Now()
		if r := alice.iq(t, req); r.child(upload.NS, "slot") == nil {
			t.Fatalf("alice's slot: %s", r)
		}
		files := &upload.Files{Store: ts.srv.store.(storage.Uploads), Dir: filepath.Join(ts.cfg.DataDir, "uploads")}
		recs, err := files.Store.UploadsOf(t.Context(), bare("alice"))
		if err != nil || len(recs) != 1 {
			t.Fatalf("alice's records: %v, %v", recs, err)
		}
		want := granted.Add(90 * 24 * time.Hour)
		if recs[0].Class != "internal" || recs[0].Until.Sub(want).Abs() > 2*time.Hour {
			t.Fatalf("record class %q until %v, want internal until about %v", recs[0].Class, recs[0].Until, want)
		}
		r := bob.iq(t, req)
		typ, cond := r.stanzaError()
		if typ != "cancel" || cond != "not-allowed" || !strings.Contains(r.String(), "Bob may not upload. (no_uploads_for_bob)") {
			t.Fatalf("bob's refusal: %s", r)
		}
		if recs, _ := files.Store.UploadsOf(t.Context(), bare("bob")); len(recs) != 0 {
			t.Fatalf("a refused request made records: %v", recs)
		}
	})
}
