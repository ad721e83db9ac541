package upload

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

func TestDownload(t *testing.T) {
	e := newEnv(t, nil)
	content := randomBytes(5000) // five chunks of 1024, the last short
	get := e.upload(e.alice, "Quartalszahlen Ü.pdf", content, "application/pdf")

	t.Run("full", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, get, nil, nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, content) {
			t.Fatalf("GET: %s, %d bytes", resp.Status, len(body))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/pdf" {
			t.Errorf("Content-Type = %q", ct)
		}
		_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		if err != nil || params["filename"] != "Quartalszahlen Ü.pdf" {
			t.Errorf("Content-Disposition = %q (%v)", resp.Header.Get("Content-Disposition"), err)
		}
		if resp.Header.Get("ETag") == "" || resp.Header.Get("Accept-Ranges") != "bytes" {
			t.Errorf("ETag %q, Accept-Ranges %q", resp.Header.Get("ETag"), resp.Header.Get("Accept-Ranges"))
		}
	})
	t.Run("head", func(t *testing.T) {
		resp, body := do(t, http.MethodHead, get, nil, nil)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != int64(len(content)) {
			t.Fatalf("HEAD: %s, length %d, %d bytes", resp.Status, resp.ContentLength, len(body))
		}
	})
	etag := func() string { r, _ := do(t, http.MethodHead, get, nil, nil); return r.Header.Get("ETag") }()
	ranges := []struct {
		name      string
		hdr       map[string]string
		status    int
		want      []byte
		wantRange string
	}{
		{"inside one chunk", map[string]string{"Range": "bytes=10-19"}, 206, content[10:20], "bytes 10-19/5000"},
		{"across chunks", map[string]string{"Range": "bytes=1000-3100"}, 206, content[1000:3101], "bytes 1000-3100/5000"},
		{"open end (resume)", map[string]string{"Range": "bytes=4090-"}, 206, content[4090:], "bytes 4090-4999/5000"},
		{"suffix", map[string]string{"Range": "bytes=-7"}, 206, content[4993:], "bytes 4993-4999/5000"},
		{"past the end", map[string]string{"Range": "bytes=6000-"}, 416, nil, "bytes */5000"},
		{"If-Range matches", map[string]string{"Range": "bytes=0-9", "If-Range": etag}, 206, content[:10], "bytes 0-9/5000"},
		{"If-Range differs", map[string]string{"Range": "bytes=0-9", "If-Range": `"other"`}, 200, content, ""},
		{"If-None-Match", map[string]string{"If-None-Match": etag}, 304, []byte{}, ""},
	}
	for _, c := range ranges {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, http.MethodGet, get, nil, c.hdr)
			if resp.StatusCode != c.status {
				t.Fatalf("status %s, want %d", resp.Status, c.status)
			}
			if c.want != nil && !bytes.Equal(body, c.want) {
				t.Errorf("body: %d bytes, want %d", len(body), len(c.want))
			}
			if got := resp.Header.Get("Content-Range"); got != c.wantRange {
				t.Errorf("Content-Range = %q, want %q", got, c.wantRange)
			}
		})
	}
	t.Run("multiple ranges", func(t *testing.T) {
		resp, body := do(t, http.MethodGet, get, nil, map[string]string{"Range": "bytes=0-4,4000-4004"})
		mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode != 206 || mt != "multipart/byteranges" {
			t.Fatalf("%s, %s", resp.Status, mt)
		}
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for _, want := range [][]byte{content[:5], content[4000:4005]} {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(p)
			if !bytes.Equal(got, want) {
				t.Errorf("part %q: %x, want %x", p.Header.Get("Content-Range"), got, want)
			}
		}
	})
	t.Run("wrong token", func(t *testing.T) {
		parts := strings.Split(get, "/")
		parts[len(parts)-2] = "AAAAAAAAAAAAAAAAAAAAAA"
		resp, _ := do(t, http.MethodGet, strings.Join(parts, "/"), nil, nil)
		if resp.StatusCode != 404 {
			t.Errorf("GET with a wrong token: %s", resp.Status)
		}
	})
	t.Run("PUT token does not download", func(t *testing.T) {
		put, _ := e.slot(e.alice, "x", 1, "")
		id := strings.Split(strings.TrimPrefix(put, e.http.URL+PathPrefix), "/")[0]
		resp, _ := do(t, http.MethodGet, e.http.URL+PathPrefix+id+"/"+e.m.token("put", id)+"/x", nil, nil)
		if resp.StatusCode != 404 {
			t.Errorf("GET with the PUT token: %s", resp.Status)
		}
	})
}

func TestPut(t *testing.T) {
	e := newEnv(t, nil)
	content := []byte("hello, world")
	cases := []struct {
		name   string
		mutate func(put string) (url string, body []byte, hdr map[string]string)
		status int
	}{
		{"wrong token", func(put string) (string, []byte, map[string]string) {
			parts := strings.Split(put, "/")
			parts[len(parts)-2] = "AAAAAAAAAAAAAAAAAAAAAA"
			return strings.Join(parts, "/"), content, nil
		}, 403},
		{"GET token", func(put string) (string, []byte, map[string]string) {
			id := strings.Split(strings.TrimPrefix(put, e.http.URL+PathPrefix), "/")[0]
			return e.http.URL + PathPrefix + id + "/" + e.m.token("get", id) + "/f", content, nil
		}, 403},
		{"too short", func(put string) (string, []byte, map[string]string) { return put, content[:5], nil }, 400},
		{"too long", func(put string) (string, []byte, map[string]string) { return put, append(content, '!'), nil }, 400},
		{"other type", func(put string) (string, []byte, map[string]string) {
			return put, content, map[string]string{"Content-Type": "image/png"}
		}, 400},
		{"ok", func(put string) (string, []byte, map[string]string) {
			return put, content, map[string]string{"Content-Type": "text/plain; charset=utf-8"}
		}, 201},
	}
	put, get := e.slot(e.alice, "hello.txt", int64(len(content)), "text/plain")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url, body, hdr := c.mutate(put)
			resp, _ := do(t, http.MethodPut, url, body, hdr)
			if resp.StatusCode != c.status {
				t.Errorf("PUT: %s, want %d", resp.Status, c.status)
			}
		})
	}
	if resp, _ := do(t, http.MethodPut, put, content, nil); resp.StatusCode != 409 {
		t.Errorf("second PUT: %s, want 409", resp.Status)
	}
	if resp, body := do(t, http.MethodGet, get, nil, nil); resp.StatusCode != 200 || string(body) != string(content) {
		t.Errorf("GET: %s %q", resp.Status, body)
	}

	put2, get2 := e.slot(e.alice, "late.txt", 3, "")
	e.advance(5*time.Minute + time.Second)
	if resp, _ := do(t, http.MethodPut, put2, []byte("abc"), nil); resp.StatusCode != 403 {
		t.Errorf("PUT after the slot expired: %s, want 403", resp.Status)
	}
	if resp, _ := do(t, http.MethodGet, get2, nil, nil); resp.StatusCode != 404 {
		t.Errorf("GET of a slot never used: %s, want 404", resp.Status)
	}
}

func TestSlotLimits(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.MaxFileSize = 1000
		o.ContentTypes = []string{"image/*", "application/pdf"}
		o.QuotaBytes = 2500
		o.SlotsPerMinute = 4
	})
	cases := []struct {
		name      string
		file      string
		size      int64
		ct        string
		condition string
	}{
		{"too large", "big.png", 1001, "image/png", stanza.NotAcceptable},
		{"type not allowed", "x.exe", 10, "application/x-msdownload", stanza.NotAcceptable},
		{"no type (octet-stream) not allowed", "x.bin", 10, "", stanza.NotAcceptable},
		{"bad type", "x.png", 10, "image", stanza.BadRequest},
		{"negative size", "x.png", -1, "image/png", stanza.BadRequest},
		{"empty name", "", 10, "image/png", stanza.BadRequest},
		{"path in name", "../x.png", 10, "image/png", stanza.BadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.request(e.alice, c.file, c.size, c.ct)
			if got := modtest.ErrorCondition(r); got != c.condition {
				t.Fatalf("condition %q, want %q: %s", got, c.condition, r.El)
			}
		})
	}
	r := e.request(e.alice, "big.png", 1001, "image/png")
	if !strings.Contains(r.El.String(), "<file-too-large xmlns='"+NS+"'><max-file-size>1000</max-file-size>") {
		t.Errorf("too large: no max-file-size in %s", r.El)
	}

	t.Run("quota", func(t *testing.T) {
		e.slot(e.alice, "a.png", 1000, "image/png")
		e.slot(e.alice, "b.png", 1000, "image/png")
		r := e.request(e.alice, "c.png", 501, "image/png")
		if e, _ := stanza.ErrorOf(r); e.Condition != stanza.ResourceConstraint || e.Type != stanza.Wait {
			t.Fatalf("over quota: %s", r.El)
		}
		e.slot(e.alice, "d.png", 500, "image/png") // exactly the quota
	})
	t.Run("rate", func(t *testing.T) {
		bob := e.srv.Connect("bob@example.com/pc")
		for range 4 {
			e.slot(bob, "a.png", 1, "image/png")
		}
		r := e.request(bob, "a.png", 1, "image/png")
		if modtest.ErrorCondition(r) != stanza.ResourceConstraint || !strings.Contains(r.El.String(), "<retry xmlns='"+NS+"' stamp='2026-11-26T12:01:00Z'/>") {
			t.Fatalf("fifth slot in a minute: %s", r.El)
		}
		e.advance(time.Minute)
		e.slot(bob, "a.png", 1, "image/png")
	})
}

func TestRetentionAndPurge(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Retention = time.Hour })
	get := e.upload(e.alice, "a.txt", []byte("kept for an hour"), "text/plain")
	e.slot(e.alice, "never.txt", 5, "text/plain") // never uploaded
	e.advance(59 * time.Minute)
	if resp, _ := do(t, http.MethodGet, get, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("GET within retention: %s", resp.Status)
	}
	e.advance(time.Minute)
	if resp, _ := do(t, http.MethodGet, get, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET after retention: %s, want 404", resp.Status)
	}
	n, err := e.m.Purge(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	if files := blobs(t, e.m.files.Dir); len(files) != 0 {
		t.Errorf("files left after purge: %q", files)
	}
	if fs, _ := e.m.files.List(t.Context(), "alice@example.com"); len(fs) != 0 {
		t.Errorf("records left after purge: %+v", fs)
	}
}

// blobs lists the stored files under dir (not tmp/).
func blobs(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestListAndDeleteOwner(t *testing.T) {
	e := newEnv(t, nil)
	bob := e.srv.Connect("bob@example.com/pc")
	getA := e.upload(e.alice, "eins.txt", []byte("1"), "text/plain")
	e.advance(time.Second)
	e.upload(e.alice, "zwei.txt", []byte("22"), "text/plain")
	getB := e.upload(bob, "bob.txt", []byte("b"), "text/plain")
	ctx := t.Context()
	list, err := e.m.Files().List(ctx, "alice@example.com")
	if err != nil || len(list) != 2 || list[0].Name != "eins.txt" || list[1].Name != "zwei.txt" || list[1].Size != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	rd, err := e.m.Files().Open(list[1])
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	if string(got) != "22" {
		t.Errorf("Open: %q", got)
	}
	n, err := e.m.Files().DeleteOwner(ctx, "alice@example.com")
	if err != nil || n != 2 {
		t.Fatalf("DeleteOwner = %d, %v", n, err)
	}
	if resp, _ := do(t, http.MethodGet, getA, nil, nil); resp.StatusCode != 404 {
		t.Errorf("GET after the owner's files were deleted: %s", resp.Status)
	}
	if resp, _ := do(t, http.MethodGet, getB, nil, nil); resp.StatusCode != 200 {
		t.Errorf("another owner's file: %s", resp.Status)
	}
	if got := len(blobs(t, e.m.files.Dir)); got != 1 {
		t.Errorf("%d files left, want bob's one", got)
	}
}

func TestDisco(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxFileSize = 12345 })
	d := e.srv.Host.DiscoInfo(module.ToHost)
	found := false
	for _, f := range d.Features {
		found = found || f == NS
	}
	if !found {
		t.Errorf("features %q lack %s", d.Features, NS)
	}
	var form string
	for _, f := range d.Forms {
		form += f.String()
	}
	if !strings.Contains(form, NS) || !strings.Contains(form, "<value>12345</value>") {
		t.Errorf("no XEP-0363 form with max-file-size: %s", form)
	}
}

func TestNoListener(t *testing.T) {
	info, _ := module.Lookup(ID)
	m := info.New().(*Module)
	o := m.Options().(*Options)
	dir := t.TempDir()
	o.Dir, o.SecretFile = filepath.Join(dir, "files"), filepath.Join(dir, "upload.key")
	srv := modtest.New(t, modtest.Options{}, router.Enabled{Info: info, Module: m})
	srv.Account("alice")
	c := srv.Connect("alice@example.com/a")
	for _, f := range srv.Host.DiscoInfo(module.ToHost).Features {
		if f == NS {
			t.Errorf("uploads announced without an HTTPS listener")
		}
	}
	c.SendXML(`<iq type='get' id='r' to='example.com'><request xmlns='` + NS + `' filename='a' size='1'/></iq>`)
	if got := modtest.ErrorCondition(c.NextIQ("r")); got != stanza.ServiceUnavailable {
		t.Errorf("slot without a listener: %q, want service-unavailable", got)
	}
}

func TestCorruptFile(t *testing.T) {
	e := newEnv(t, nil)
	content := randomBytes(3000)
	get := e.upload(e.alice, "a.bin", content, "application/octet-stream")
	files := blobs(t, e.m.files.Dir)
	if len(files) != 1 {
		t.Fatalf("files: %q", files)
	}
	raw, _ := os.ReadFile(files[0])
	raw[1500] ^= 1 // inside the second chunk
	os.WriteFile(files[0], raw, 0o600)
	if resp, body := do(t, http.MethodGet, get, nil, map[string]string{"Range": "bytes=0-99"}); resp.StatusCode != 206 || !bytes.Equal(body, content[:100]) {
		t.Errorf("first chunk is intact: %s", resp.Status)
	}
	// The headers may be out before the chunk fails to open: then the
	// body is cut short, which the client sees as an error.
	req, _ := http.NewRequest(http.MethodGet, get, nil)
	req.Header.Set("Range", "bytes=1100-1199")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode == 206 && bytes.Equal(body, content[1100:1200]) {
		t.Errorf("a tampered chunk was served")
	}
}

// TestPlaintextNotStored uploads a file whose name and content carry a
// marker and checks that the marker is nowhere under the data directory:
// not in the sealed files, not in the database (with its WAL).
func TestPlaintextNotStored(t *testing.T) {
	e := newEnv(t, nil)
	marker := "KONTOR-UPLOAD-MARKER-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	content := bytes.Repeat([]byte(marker+" "), 500)
	get := e.upload(e.alice, marker+".txt", content, "text/plain")
	if resp, body := do(t, http.MethodGet, get, nil, nil); resp.StatusCode != 200 || !bytes.Equal(body, content) {
		t.Fatalf("GET: %s", resp.Status)
	}
	checked := 0
	filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		checked++
		if bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds the marker in the clear", p)
		}
		return nil
	})
	if checked < 3 { // the sealed file, the secret, the database
		t.Errorf("only %d files checked", checked)
	}
}

func TestPolicyDecidesUpload(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxFileSize = 1000; o.Retention = time.Hour })
	t.Run("refused", func(t *testing.T) {
		e.pol.deny["alice@example.com"] = true
		defer delete(e.pol.deny, "alice@example.com")
		r := e.request(e.alice, "a.png", 10, "image/png")
		se, _ := stanza.ErrorOf(r)
		if se.Condition != stanza.NotAllowed || se.Type != stanza.Cancel || se.Text != "You may not upload files. (no_uploads)" {
			t.Fatalf("refusal %s", r.El)
		}
		app := r.El.Child(stanza.NSClient, "error").Child(gate.NS, "decision")
		if app == nil || app.Get("id") != "d-up" || app.Get("reason") != "no_uploads" {
			t.Fatalf("no decision in %s", r.El)
		}
		if fs, _ := e.m.files.List(t.Context(), "alice@example.com"); len(fs) != 0 {
			t.Fatalf("a refused request made a record: %+v", fs)
		}
	})
	t.Run("asked", func(t *testing.T) {
		e.pol.mu.Lock()
		e.pol.asked = nil
		e.pol.mu.Unlock()
		e.slot(e.alice, "a.png", 10, "IMAGE/PNG")
		e.pol.mu.Lock()
		defer e.pol.mu.Unlock()
		want := gate.UploadInput{From: gate.Party{JID: "alice@example.com", Local: true}, Size: 10, ContentType: "image/png", At: e.now()}
		if len(e.pol.asked) != 1 || e.pol.asked[0] != want {
			t.Fatalf("asked %+v, want %+v", e.pol.asked, want)
		}
	})
	t.Run("policy limits narrow the module's", func(t *testing.T) {
		e.pol.maxSize, e.pol.types = 500, []string{"application/pdf"}
		defer func() { e.pol.maxSize, e.pol.types = 0, nil }()
		r := e.request(e.alice, "a.pdf", 501, "application/pdf")
		if modtest.ErrorCondition(r) != stanza.NotAcceptable || !strings.Contains(r.El.String(), "<max-file-size>500</max-file-size>") {
			t.Fatalf("over the policy's size: %s", r.El)
		}
		if r := e.request(e.alice, "a.png", 10, "image/png"); modtest.ErrorCondition(r) != stanza.NotAcceptable {
			t.Fatalf("type outside the policy's list: %s", r.El)
		}
		e.slot(e.alice, "a.pdf", 500, "application/pdf")
		// A policy limit above the module's does not widen it.
		e.pol.maxSize = 5000
		if r := e.request(e.alice, "b.pdf", 1001, "application/pdf"); !strings.Contains(r.El.String(), "<max-file-size>1000</max-file-size>") {
			t.Fatalf("over the module's size: %s", r.El)
		}
	})
	t.Run("retention is the policy's", func(t *testing.T) {
		e.pol.class, e.pol.keep = "business_letter", 3*time.Hour
		defer func() { e.pol.class, e.pol.keep = "", 0 }()
		start := e.now()
		get := e.upload(e.alice, "letter.txt", []byte("kept three hours"), "text/plain")
		var rec File
		list, _ := e.m.files.List(t.Context(), "alice@example.com")
		for _, f := range list {
			if f.Name == "letter.txt" {
				rec = f
			}
		}
		if rec.Class != "business_letter" || !rec.Until.Equal(start.Add(3*time.Hour)) {
			t.Fatalf("record %+v: want class business_letter until %v", rec, start.Add(3*time.Hour))
		}
		e.advance(3*time.Hour - time.Second) // past the configured hour, within the policy's three
		if resp, _ := do(t, http.MethodGet, get, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("GET within the policy's retention: %s", resp.Status)
		}
		e.advance(time.Second)
		if resp, _ := do(t, http.MethodGet, get, nil, nil); resp.StatusCode != 404 {
			t.Fatalf("GET after the policy's retention: %s, want 404", resp.Status)
		}
		if _, err := e.m.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.files.Store.Upload(t.Context(), rec.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("record after the purge: %v", err)
		}
		if _, err := os.Stat(e.m.files.path(rec.ID)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("file after the purge: %v", err)
		}
	})
}

func TestNoPolicyRefusesUploads(t *testing.T) {
	e := newEnv(t, nil)
	e.m.decider = nil
	r := e.request(e.alice, "a.png", 10, "image/png")
	if se, _ := stanza.ErrorOf(r); se.Condition != stanza.NotAllowed || !strings.Contains(se.Text, gate.ReasonUnavailable) {
		t.Fatalf("without a policy: %s", r.El)
	}
}

func TestFilesPut(t *testing.T) {
	e := newEnv(t, nil)
	content := randomBytes(2500)
	created := e.now().Add(-time.Hour)
	fi, err := e.m.files.Put(t.Context(), "alice@example.com", "p.bin", "application/octet-stream", bytes.NewReader(content),
		int64(len(content)), created, created.Add(48*time.Hour), "internal")
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.m.files.Lookup(t.Context(), fi.ID, e.now())
	if err != nil || got.Name != "p.bin" || got.Class != "internal" || !got.Stored.Equal(created) || got.Owner != "alice@example.com" {
		t.Fatalf("Lookup = %+v, %v", got, err)
	}
	r, err := e.m.files.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if b, _ := io.ReadAll(r); !bytes.Equal(b, content) {
		t.Fatal("the content read back differs")
	}
	// A short body is refused and leaves nothing behind.
	if _, err := e.m.files.Put(t.Context(), "alice@example.com", "short", "text/plain", strings.NewReader("abc"), 10, created, time.Time{}, ""); err == nil {
		t.Fatal("a body shorter than the size was stored")
	}
	if list, _ := e.m.files.List(t.Context(), "alice@example.com"); len(list) != 1 {
		t.Fatalf("records after a failed Put: %+v", list)
	}
}
