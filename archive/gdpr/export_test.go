package gdpr

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/storage"
)

// exportZip exports alice into a file and returns its path and contents
// by name.
func exportZip(t *testing.T, tool *Tool, opts ExportOptions) (string, map[string][]byte, []string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.zip")
	f, err := os.Create(path)
	ok(t, err)
	opts.TempDir = t.TempDir()
	res, err := tool.Export(t.Context(), Grant{Operator: "dpo", Purpose: "Art. 15 request"}, alice, f, opts)
	ok(t, err)
	ok(t, f.Close())
	if res.Messages != 25 || res.Offline != 1 {
		t.Fatalf("exported %d messages, %d offline; want 25, 1", res.Messages, res.Offline)
	}
	zr, err := zip.OpenReader(path)
	ok(t, err)
	defer zr.Close()
	files := map[string][]byte{}
	var order []string
	for _, zf := range zr.File {
		rc, err := zf.Open()
		ok(t, err)
		b, err := io.ReadAll(rc)
		ok(t, err)
		rc.Close()
		files[zf.Name] = b
		order = append(order, zf.Name)
	}
	return path, files, order
}

func checkManifest(t *testing.T, files map[string][]byte, order []string) {
	t.Helper()
	if order[0] != "00-information.html" || order[len(order)-1] != "manifest.json" {
		t.Errorf("files in order %v: want the information sheet first and the manifest last", order)
	}
	var m Manifest
	ok(t, json.Unmarshal(files["manifest.json"], &m))
	if len(m.Files) != len(files)-1 {
		t.Errorf("manifest lists %d files, the zip has %d besides it", len(m.Files), len(files)-1)
	}
	for _, f := range m.Files {
		sum := sha256.Sum256(files[f.Name])
		if hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(files[f.Name])) != f.Size {
			t.Errorf("manifest entry %s does not match the file", f.Name)
		}
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool, a, rec := newTool(t, b, retention)
		secret, vsecret := marker(t, "SECRET"), marker(t, "VCARD")
		seed(t, b, a, secret, vsecret)
		path, files, order := exportZip(t, tool, ExportOptions{IncludeThirdParties: true, Justification: "the person asked for their full conversations"})
		checkManifest(t, files, order)
		if e, found := rec.last("gdpr.export"); !found || e.Subject != alice || e.Details["third_parties"] != "true" || e.Details["justification"] == "" {
			t.Errorf("export audit entry = %+v", e)
		}

		// data.json round-trips through its schema.
		var d ExportData
		ok(t, json.Unmarshal(files["data.json"], &d))
		if d.Schema != SchemaVersion || d.Subject != alice || d.Pseudonymised || d.Account == nil || d.Account.JID != alice {
			t.Fatalf("data.json head: %+v", d)
		}
		if len(d.Roster) != 1 || d.Roster[0].JID != bob || d.Roster[0].Name != "Bob" || d.Roster[0].Groups[0] != "Team" {
			t.Errorf("roster: %+v", d.Roster)
		}
		if !strings.Contains(d.VCard, vsecret) || len(d.PrivateXML) != 1 || len(d.PEP) != 1 || len(d.PEP[0].Items) != 1 ||
			len(d.Blocklist) != 1 || d.ArchivePrefs == nil || d.LastActivity == nil {
			t.Errorf("vcard/private/pep/blocklist/prefs/last: %+v", d)
		}
		if len(d.Offline) != 1 || !strings.Contains(d.Offline[0].Body, secret) {
			t.Errorf("offline: %+v", d.Offline)
		}
		if len(d.Archive) != 25 || !strings.Contains(d.Archive[0].Body, secret) || d.Archive[0].Stanza == "" {
			t.Fatalf("archive: %d messages", len(d.Archive))
		}
		classes := map[string]bool{}
		for _, k := range d.Retention.DataKeys {
			classes[k.Class] = true
		}
		if !classes["standard"] || !classes["business_letter"] {
			t.Errorf("retention data keys: %+v", d.Retention.DataKeys)
		}
		if !bytes.Contains(files["conversations.html"], []byte(secret)) || !bytes.Contains(files["00-information.html"], []byte("Art. 77")) {
			t.Errorf("the HTML files lack the conversations or the rights")
		}

		// Import into a fresh Kontor of the same backend.
		fresh := openBackend(t, b.name)
		tool2, a2, _ := newTool(t, fresh, nil)
		tool2.Seal = func(ctx context.Context, owner, from string, stamp time.Time, st []byte) error {
			sealed, err := a2.Sealer(nil).Seal(owner, offlineAD(from, stamp), st)
			if err != nil {
				return err
			}
			_, err = fresh.st.StoreOffline(ctx, storage.OfflineMessage{Owner: owner, From: from, Stamp: stamp, Sealed: sealed}, 0)
			return err
		}
		res, err := tool2.ImportFile(ctx, Grant{Operator: "admin"}, path)
		ok(t, err)
		if res.Users != 1 || res.Contacts != 1 || res.Messages != 25 || res.Offline != 1 || res.PEPItems != 1 {
			t.Fatalf("import result %+v", res)
		}
		if _, err := fresh.st.Account(ctx, alice); err != nil {
			t.Fatal(err)
		}
		items, _, err := fresh.st.RosterItems(ctx, alice)
		ok(t, err)
		if len(items) != 1 || items[0].Contact != bob || items[0].Name != "Bob" || items[0].Subscription != storage.SubBoth || items[0].Groups[0] != "Team" {
			t.Errorf("imported roster %+v", items)
		}
		v, err := fresh.st.VCard(ctx, alice)
		ok(t, err)
		if !bytes.Contains(v, []byte(vsecret)) {
			t.Errorf("imported vcard %s", v)
		}
		if keys, _ := fresh.st.PrivateXMLKeys(ctx, alice); len(keys) != 1 {
			t.Errorf("imported private xml %v", keys)
		}
		if its, _ := fresh.st.PEPItems(ctx, alice, "urn:xmpp:avatar:metadata", nil, 0); len(its) != 1 {
			t.Errorf("imported pep items %v", its)
		}
		if bl, _ := fresh.st.BlockedJIDs(ctx, alice); len(bl) != 1 {
			t.Errorf("imported blocklist %v", bl)
		}
		off, err := fresh.st.OfflineMessages(ctx, alice, 0)
		ok(t, err)
		if len(off) != 1 {
			t.Fatalf("imported offline %d", len(off))
		}
		plain, err := a2.Sealer(nil).Open(alice, offlineAD(off[0].From, off[0].Stamp), off[0].Sealed)
		ok(t, err)
		if !bytes.Contains(plain, []byte(secret)) {
			t.Errorf("imported offline message %s", plain)
		}
		got := archived(t, a2, alice)
		if len(got) != 25 {
			t.Fatalf("imported archive: %d messages", len(got))
		}
		for i, m := range got {
			if m.ID != d.Archive[i].ID || !m.Time.Equal(d.Archive[i].Time) || !bytes.Contains(m.Stanza, []byte(d.Archive[i].Body)) ||
				m.Outgoing != (d.Archive[i].Direction == "sent") {
				t.Errorf("imported message %d: %+v, exported %+v", i, m, d.Archive[i])
			}
		}
		// A second import is refused: the account exists.
		if _, err := tool2.ImportFile(ctx, Grant{Operator: "admin"}, path); err == nil {
			t.Error("importing into an existing account succeeded")
		}
	})
}

func TestExportPseudonymises(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		tool, a, _ := newTool(t, b, retention)
		seed(t, b, a, marker(t, "SECRET"), marker(t, "VCARD"))
		if _, err := tool.Export(t.Context(), Grant{Operator: "dpo"}, alice, io.Discard, ExportOptions{IncludeThirdParties: true}); err == nil {
			t.Error("including third parties without a justification succeeded")
		}
		_, files, order := exportZip(t, tool, ExportOptions{})
		checkManifest(t, files, order)
		for name, data := range files {
			for _, other := range []string{bob, remote, supplier, "spam@other.example", "other.example"} {
				if bytes.Contains(data, []byte(other)) {
					t.Errorf("%s names %s", name, other)
				}
			}
		}
		var d ExportData
		ok(t, json.Unmarshal(files["data.json"], &d))
		if !d.Pseudonymised || len(d.Roster) != 1 || !strings.HasSuffix(d.Roster[0].JID, "@pseudonymised.invalid") || d.Roster[0].Name != "" {
			t.Fatalf("pseudonymised roster %+v", d.Roster)
		}
		// One person, one pseudonym: the remote peer of all 20 standard
		// messages (several resources) has one.
		peers := map[string]int{}
		for _, m := range d.Archive {
			peers[m.With]++
			if m.Stanza != "" {
				t.Fatalf("a pseudonymised export holds a full stanza: %s", m.Stanza)
			}
		}
		if len(peers) != 2 || peers[d.Archive[0].With] != 20 {
			t.Errorf("pseudonyms of the two peers: %v", peers)
		}
	})
}
