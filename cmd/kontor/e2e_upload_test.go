package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"kontor.im/kontor/core/mod/upload"
	"kontor.im/kontor/core/storage"
)

// TestE2EUpload runs XEP-0363 against the server's HTTPS listener, on both
// backends: alice (mellium.im/xmpp, over TLS) asks for a slot, PUTs a file
// and sends bob the GET URL; bob downloads it, whole and a range; after the
// file's retention has passed it is a 404, and so is a second file after
// alice's files were deleted through the Go API that erasure uses.
func TestE2EUpload(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		ts := startTestServer(t, backend, func(c *Config) {
			c.Modules.Enabled = append(defaultModuleIDs(), "upload")
			c.Modules.Options = map[string]any{"upload": map[string]any{"retention": "3s"}}
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
