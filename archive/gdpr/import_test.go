package gdpr

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/storage"
)

// importTool is a tool over a fresh store that can seal offline messages.
func importTool(t *testing.T, b *backend) *Tool {
	t.Helper()
	tool, a, _ := newTool(t, b, nil)
	tool.Seal = func(ctx context.Context, owner, from string, stamp time.Time, st []byte) error {
		sealed, err := a.Sealer(nil).Seal(owner, offlineAD(from, stamp), st)
		if err != nil {
			return err
		}
		_, err = b.st.StoreOffline(ctx, storage.OfflineMessage{Owner: owner, From: from, Stamp: stamp, Sealed: sealed}, 0)
		return err
	}
	return tool
}

// TestImportEjabberd imports a real export of ejabberd 23.01
// (testdata/ejabberd, made by make.sh there): the main file XIncludes the
// host's file; users come with SCRAM-SHA-1 hashes (encoded twice, as
// ejabberd does) and log in with their old passwords; rosters, vCards,
// bookmarks and the offline message arrive; the privacy list is reported
// as not kept.
func TestImportEjabberd(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool := importTool(t, b)
		res, err := tool.ImportFile(ctx, Grant{Operator: "admin"}, filepath.Join("testdata", "ejabberd", "export.xml"))
		ok(t, err)
		if res.Users != 2 || res.Contacts != 3 || res.Offline != 1 || res.Credentials != 2 || res.Messages != 0 {
			t.Fatalf("import result %+v", res)
		}
		if len(res.Skipped) != 1 || !strings.HasPrefix(res.Skipped[0], "alice@example.org: privacy lists: 1 (XEP-0016) not kept") {
			t.Errorf("skipped %q", res.Skipped)
		}
		const alice, bob = "alice@example.org", "bob@example.org"
		for j, pw := range map[string]string{alice: "Alice-Secret-1", bob: "Bob-Secret-2"} {
			acc, err := b.st.Account(ctx, j)
			ok(t, err)
			if len(acc.Credentials) != 1 || acc.Credentials[0].Hash != "SHA-1" || acc.Credentials[0].Iterations != 4096 {
				t.Fatalf("%s credentials %+v", j, acc.Credentials)
			}
			c := acc.Credentials[0]
			cred := sasl.Credential{Hash: sasl.Hash(c.Hash), Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
			if !sasl.VerifyPlainWithCredential(cred, pw) {
				t.Errorf("%s does not log in with the password ejabberd had", j)
			}
			if sasl.VerifyPlainWithCredential(cred, pw+"x") {
				t.Errorf("%s logs in with a wrong password", j)
			}
		}
		items, _, err := b.st.RosterItems(ctx, alice)
		ok(t, err)
		got := map[string]storage.RosterItem{}
		for _, it := range items {
			got[it.Contact] = it
		}
		if it := got[bob]; it.Name != "Bob Bauer" || it.Subscription != storage.SubBoth || !slices.Equal(it.Groups, []string{"Team"}) {
			t.Errorf("alice's item for bob: %+v", it)
		}
		if it := got["carol@example.net"]; it.Subscription != storage.SubTo || !slices.Equal(it.Groups, []string{"Partners"}) {
			t.Errorf("alice's item for carol: %+v", it)
		}
		v, err := b.st.VCard(ctx, alice)
		ok(t, err)
		if !strings.Contains(string(v), "<FN>Alice Adler</FN>") || !strings.Contains(string(v), "<FAMILY>Adler</FAMILY>") {
			t.Errorf("vCard %s", v)
		}
		keys, err := b.st.PrivateXMLKeys(ctx, alice)
		ok(t, err)
		if !slices.Equal(keys, []string{"{storage:bookmarks}storage"}) {
			t.Errorf("private XML keys %q", keys)
		}
		off, err := b.st.OfflineMessages(ctx, alice, 10)
		ok(t, err)
		if len(off) != 1 || off[0].From != bob {
			t.Fatalf("offline messages %+v", off)
		}
		plain, err := tool.OpenOffline(off[0])
		ok(t, err)
		if !strings.Contains(string(plain), "KONTOR-EJABBERD-OFFLINE") || off[0].Stamp.Year() < 2026 {
			t.Errorf("offline message %s at %v", plain, off[0].Stamp)
		}
	})
}

// TestImportRefusals: what an import cannot take is a clear error, or a
// line in Skipped when the rest can go on.
func TestImportRefusals(t *testing.T) {
	b := openBackend(t, "sqlite")
	tool := importTool(t, b)
	ctx := t.Context()
	doc := func(s string) *io.SectionReader { return io.NewSectionReader(strings.NewReader(s), 0, int64(len(s))) }
	host := func(body string) string {
		return "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>" + body + "</host></server-data>"
	}
	for _, tt := range []struct {
		name, doc, err string
	}{
		{"not XEP-0227", "<rss version='2.0'/>", "not XEP-0227 server data"},
		{"xi:include from a stream", "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='h.xml'/></server-data>",
			"import the main file from its directory"},
		{"bad host", "<server-data xmlns='urn:xmpp:pie:0'><host jid='a@b/c'/></server-data>", "is not a domain"},
		{"bad user", host("<user name='a b'/>"), "is not a valid address"},
	} {
		if _, err := tool.Import(ctx, doc(tt.doc)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
		}
	}
	tool.ImportDomains = []string{"localhost"}
	if _, err := tool.Import(ctx, doc(host("<user name='x'/>"))); err == nil || !strings.Contains(err.Error(), "not one of this server's domains (localhost)") {
		t.Errorf("foreign host: %v", err)
	}
	tool.ImportDomains = nil

	// Carried on with: another hash, an unknown element; a clear password
	// (XEP-0227 as first published) becomes SCRAM hashes.
	res, err := tool.Import(ctx, doc(host(`<user name='dan' password='Dans-Old-Password'>`+
		`<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='SCRAM-SHA-512'><iter-count>4096</iter-count></scram-credentials>`+
		`<x xmlns='urn:example:unknown'/></user>`)))
	ok(t, err)
	if res.Users != 1 || res.Credentials != 1 || len(res.Skipped) != 2 ||
		!strings.Contains(res.Skipped[0], `mechanism "SCRAM-SHA-512" cannot be used`) || !strings.Contains(res.Skipped[1], "urn:example:unknown") {
		t.Errorf("result %+v", res)
	}
	acc, err := b.st.Account(ctx, "dan@example.org")
	ok(t, err)
	if len(acc.Credentials) != 2 {
		t.Fatalf("dan's credentials %+v", acc.Credentials)
	}
	c := acc.Credentials[0]
	if !sasl.VerifyPlainWithCredential(sasl.Credential{Hash: sasl.Hash(c.Hash), Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}, "Dans-Old-Password") {
		t.Error("dan does not log in with his password")
	}

	// An include that leaves the directory is refused.
	dir := t.TempDir()
	main := filepath.Join(dir, "main.xml")
	ok(t, os.WriteFile(main, []byte("<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='../etc/passwd'/></server-data>"), 0o600))
	if _, err := tool.ImportFile(ctx, Grant{Operator: "admin"}, main); err == nil || !strings.Contains(err.Error(), "only a file beside the main file") {
		t.Errorf("include outside: %v", err)
	}
}

// TestImportProsody imports a real export of Prosody 0.12
// (testdata/prosody, made by make.sh there): a directory with one file per
// user. The SCRAM-SHA-1 hashes (salts that are UUID text) verify the old
// passwords; roster, vCard and bookmarks arrive. The ejabberd export's
// directory imports too: its host file is taken through the main file's
// include only.
func TestImportProsody(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool := importTool(t, b)
		res, err := tool.ImportFile(ctx, Grant{Operator: "admin"}, filepath.Join("testdata", "prosody"))
		ok(t, err)
		if res.Users != 2 || res.Contacts != 1 || res.Credentials != 2 || len(res.Skipped) != 0 {
			t.Fatalf("import result %+v", res)
		}
		for j, pw := range map[string]string{"alice@example.org": "Alice-Secret-1", "bob@example.org": "Bob-Secret-2"} {
			acc, err := b.st.Account(ctx, j)
			ok(t, err)
			if len(acc.Credentials) != 1 || acc.Credentials[0].Iterations != 10000 {
				t.Fatalf("%s credentials %+v", j, acc.Credentials)
			}
			c := acc.Credentials[0]
			if !sasl.VerifyPlainWithCredential(sasl.Credential{Hash: sasl.Hash(c.Hash), Salt: c.Salt, Iterations: c.Iterations,
				StoredKey: c.StoredKey, ServerKey: c.ServerKey}, pw) {
				t.Errorf("%s does not log in with the password Prosody had", j)
			}
		}
		items, _, err := b.st.RosterItems(ctx, "alice@example.org")
		ok(t, err)
		if len(items) != 1 || items[0].Contact != "bob@example.org" || items[0].Subscription != storage.SubBoth || !slices.Equal(items[0].Groups, []string{"Team"}) {
			t.Errorf("roster %+v", items)
		}
		if v, err := b.st.VCard(ctx, "alice@example.org"); err != nil || !strings.Contains(string(v), "<FN>Alice Adler</FN>") {
			t.Errorf("vCard %s, %v", v, err)
		}
		if keys, _ := b.st.PrivateXMLKeys(ctx, "alice@example.org"); !slices.Equal(keys, []string{"{storage:bookmarks}storage"}) {
			t.Errorf("private XML %q", keys)
		}

		other := importTool(t, openBackend(t, b.name))
		res, err = other.ImportFile(ctx, Grant{Operator: "admin"}, filepath.Join("testdata", "ejabberd"))
		ok(t, err)
		if res.Users != 2 || res.Offline != 1 {
			t.Errorf("ejabberd directory: %+v", res)
		}
		if _, err := other.ImportFile(ctx, Grant{Operator: "admin"}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no XEP-0227 file") {
			t.Errorf("empty directory: %v", err)
		}
	})
}
