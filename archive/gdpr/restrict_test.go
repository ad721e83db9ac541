package gdpr

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// TestRestrictedAfterRecreate: what an erasure keeps (a legal hold, a
// retention duty) is restricted (Art. 18). When the erased JID is given to
// a new account, its MAM (and a room's, for an erased room) shows nothing
// of it, nor does offline delivery or an ordinary export; the DPO's
// eDiscovery and an export with IncludeRestricted still have it, marked.
func TestRestrictedAfterRecreate(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ctx := t.Context()
		tool, a, _ := newTool(t, b, retention)
		seed(t, b, a, marker(t, "S"), marker(t, "V"))
		g := Grant{Operator: "dpo"}
		const room = "board@conference.example.com"
		base := time.Now().Add(-30 * time.Minute)
		for i := range 4 {
			ok(t, a.Append(ctx, chat(room, "board@conference.example.com/bob", false, base.Add(time.Duration(i)*time.Second), "room secret")))
		}
		ok(t, a.Flush(ctx))
		oldDave := archived(t, a, dave)
		if len(oldDave) != 3 {
			t.Fatalf("dave has %d messages before, want 3", len(oldDave))
		}

		gs := b.st.(storage.GDPRStore)
		oldKeys, err := gs.ArchiveKeysOf(ctx, dave)
		ok(t, err)

		// dave is under a legal hold, alice's business letters under a
		// retention duty, the room under a hold: all three erased.
		_, err = tool.AddHold(ctx, g, dave, "LIT-1", "lawsuit")
		ok(t, err)
		_, err = tool.AddHold(ctx, g, room, "LIT-2", "lawsuit")
		ok(t, err)
		for _, s := range []string{dave, alice, room} {
			_, err := tool.Erase(ctx, g, s, EraseOptions{})
			ok(t, err)
		}

		// The JIDs are given to new people, who get a message each.
		for _, j := range []string{dave, alice} {
			ok(t, b.st.CreateAccount(ctx, storage.Account{JID: j, Domain: "example.com", Created: time.Now()}))
			ok(t, a.Append(ctx, chat(j, bob, false, time.Now(), "welcome "+j)))
		}
		ok(t, a.Flush(ctx))

		// The new dave's message is sealed under a key of his own, not
		// under the erased dave's kept key of the same month and class
		// (which the erasure retired): his erasure could otherwise shred
		// what the hold keeps, and his messages would prolong its life.
		var newKeys []storage.ArchiveKey
		allKeys, err := gs.ArchiveKeysOf(ctx, dave)
		ok(t, err)
		for _, k := range allKeys {
			if !k.Retired {
				newKeys = append(newKeys, k)
			}
		}
		if len(newKeys) != 1 || len(allKeys) != len(oldKeys)+1 {
			t.Fatalf("the new dave has %d live keys, want 1: %+v", len(newKeys), newKeys)
		}
		sameSlot := false
		for _, k := range oldKeys {
			if k.ID == newKeys[0].ID {
				t.Fatalf("the new dave writes under the erased dave's key %d", k.ID)
			}
			sameSlot = sameSlot || k.ArchiveKeySlot == newKeys[0].ArchiveKeySlot
		}
		if !sameSlot {
			t.Fatalf("the test needs the new key in a slot of the old ones: old %+v, new %+v", oldKeys, newKeys)
		}

		mam := func(owner string, q module.ArchiveQuery) module.ArchivePage {
			t.Helper()
			q.Owner = owner
			p, err := a.Query(ctx, q)
			ok(t, err)
			return p
		}
		for _, j := range []string{dave, alice} {
			for _, q := range []module.ArchiveQuery{{}, {Last: true}, {With: bob}, {Start: base.Add(-2 * time.Hour)}} {
				p := mam(j, q)
				if len(p.Messages) != 1 || !strings.Contains(string(p.Messages[0].Stanza), "welcome") || p.Count != 1 {
					t.Errorf("MAM of the new %s (%+v): %d messages, count %d; want only the welcome", j, q, len(p.Messages), p.Count)
				}
			}
			if n, _ := b.st.OfflineCount(ctx, j); n != 0 {
				t.Errorf("the new %s has %d offline messages of the erased one", j, n)
			}
		}
		// Not by id, not as a paging position either.
		p := mam(dave, module.ArchiveQuery{IDs: []string{oldDave[0].ID, oldDave[1].ID}})
		if len(p.Messages) != 0 {
			t.Errorf("MAM by id returns %d restricted messages", len(p.Messages))
		}
		if _, err := a.Query(ctx, module.ArchiveQuery{Owner: dave, AfterID: oldDave[0].ID}); !errors.Is(err, archive.ErrItemNotFound) {
			t.Errorf("paging after a restricted id: %v, want item-not-found", err)
		}
		if p := mam(room, module.ArchiveQuery{}); len(p.Messages) != 0 {
			t.Errorf("room MAM after the room's erasure: %d messages", len(p.Messages))
		}
		var walked int
		ok(t, a.Walk(ctx, dave, time.Time{}, time.Time{}, 10, func(ms []module.ArchivedMessage) error {
			walked += len(ms)
			return nil
		}))
		if walked != 1 {
			t.Errorf("Walk sees %d of dave's messages, want 1", walked)
		}

		// The DPO's view: everything, the kept messages marked.
		all := archived(t, a, dave)
		restricted := 0
		for _, m := range all {
			if m.Restricted {
				restricted++
			}
		}
		if len(all) != 4 || restricted != 3 {
			t.Errorf("DPO view of dave: %d messages, %d restricted; want 4, 3", len(all), restricted)
		}
		if n := len(archived(t, a, room)); n != 4 {
			t.Errorf("DPO view of the room: %d messages, want 4", n)
		}

		// eDiscovery includes them, marked.
		dir := t.TempDir()
		res, err := tool.Discover(ctx, DiscoveryOptions{People: []string{dave}, OutDir: dir})
		ok(t, err)
		if res.Messages != 4 {
			t.Errorf("eDiscovery of dave: %d messages, want 4", res.Messages)
		}
		var marked bool
		ok(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".eml") {
				raw, err := os.ReadFile(p)
				ok(t, err)
				marked = marked || bytes.Contains(raw, []byte("X-Kontor-Restricted: 3"))
			}
			return err
		}))
		if !marked {
			t.Error("no EML marks the restricted messages")
		}

		// An export of the new dave leaves them out unless asked.
		export := func(opts ExportOptions) []ExportMessage {
			t.Helper()
			var buf bytes.Buffer
			opts.TempDir = t.TempDir()
			_, err := tool.Export(ctx, g, dave, &buf, opts)
			ok(t, err)
			zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			ok(t, err)
			rc, err := zr.Open("data.json")
			ok(t, err)
			raw, err := io.ReadAll(rc)
			ok(t, err)
			var d struct {
				Archive []ExportMessage `json:"archive"`
			}
			ok(t, json.Unmarshal(raw, &d))
			return d.Archive
		}
		if ms := export(ExportOptions{}); len(ms) != 1 || ms[0].Restricted {
			t.Errorf("ordinary export of the new dave: %+v", ms)
		}
		if _, err := tool.Export(ctx, g, dave, io.Discard, ExportOptions{IncludeRestricted: true}); err == nil {
			t.Error("an export with restricted messages but no justification succeeded")
		}
		ms := export(ExportOptions{IncludeRestricted: true, Justification: "court order LIT-1"})
		restricted = 0
		for _, m := range ms {
			if m.Restricted {
				restricted++
			}
		}
		if len(ms) != 4 || restricted != 3 {
			t.Errorf("DPO export: %d messages, %d restricted; want 4, 3", len(ms), restricted)
		}
	})
}
