package gdpr

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readIndex(t *testing.T, dir string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "index.csv"))
	ok(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	ok(t, err)
	return rows
}

func TestDiscover(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool, a, _ := newTool(t, b, retention)
		secret := marker(t, "SECRET")
		seed(t, b, a, secret, marker(t, "V"))

		// A search: only the supplier's orders match.
		dir := t.TempDir()
		res, err := tool.Discover(ctx, DiscoveryOptions{People: []string{alice, dave}, Contains: "ORDER", OutDir: dir, Batch: 4})
		ok(t, err)
		if res.Messages != 5 || res.Files != 1 {
			t.Fatalf("search result %+v, want 5 messages in 1 file", res)
		}
		rows := readIndex(t, dir)
		if len(rows) != 2 || rows[1][1] != alice || rows[1][2] != supplier || rows[1][4] != "5" {
			t.Fatalf("index %v", rows)
		}
		raw, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rows[1][0])))
		ok(t, err)
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		ok(t, err)
		body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
		ok(t, err)
		if msg.Header.Get("From") != "<"+alice+">" || msg.Header.Get("To") != "<"+supplier+">" ||
			strings.Count(string(body), "order ") != 5 || strings.Contains(string(body), secret) {
			t.Errorf("EML header %v body %q", msg.Header, body)
		}
		if _, err := msg.Header.Date(); err != nil {
			t.Errorf("Date: %v", err)
		}
		sum := sha256.Sum256(raw)
		if rows[1][7] != hex.EncodeToString(sum[:]) {
			t.Errorf("index hash %s, file %x", rows[1][7], sum)
		}
		var m Manifest
		mb, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		ok(t, err)
		ok(t, json.Unmarshal(mb, &m))
		if len(m.Files) != 2 { // index.csv and the EML
			t.Errorf("manifest %+v", m.Files)
		}

		// Everything, then an interruption after the first person
		// simulated: the rerun completes without duplicates.
		dir = t.TempDir()
		all := DiscoveryOptions{People: []string{alice, dave}, OutDir: dir, From: time.Now().Add(-24 * time.Hour), To: time.Now().Add(time.Hour)}
		res, err = tool.Discover(ctx, all)
		ok(t, err)
		if res.Messages != 28 || res.Files != 3 {
			t.Fatalf("full result %+v, want 28 messages in 3 files", res)
		}
		before := readIndex(t, dir)
		var prog discoveryProgress
		pb, err := os.ReadFile(filepath.Join(dir, "progress.json"))
		ok(t, err)
		ok(t, json.Unmarshal(pb, &prog))
		prog.People[dave] = progressPerson{IndexLen: prog.People[alice].IndexLen}
		pb, _ = json.Marshal(prog)
		ok(t, os.WriteFile(filepath.Join(dir, "progress.json"), pb, 0o600))
		res, err = tool.Discover(ctx, all)
		ok(t, err)
		if !res.Resumed || res.Messages != 28 || res.Files != 3 {
			t.Errorf("resumed result %+v", res)
		}
		if after := readIndex(t, dir); len(after) != len(before) {
			t.Errorf("index after resume has %d rows, before %d", len(after), len(before))
		}
		// Other options in the same directory are refused.
		if _, err := tool.Discover(ctx, DiscoveryOptions{People: []string{bob}, OutDir: dir}); err == nil {
			t.Error("a different export into the same directory succeeded")
		}
	})
}
