package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
)

const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
	carol = "carol@example.org"
)

// t0 is a time in the middle of a month, in the past so that tests with
// the real clock see it as recent enough (90 days) only when they choose.
var t0 = time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)

func TestRoundTrip(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		a := newArchive(t, b.store(), testRing(t), nil)
		in := []module.ArchivedMessage{
			msg(alice, bob+"/phone", true, t0, "hello bob"),
			msg(bob, alice+"/laptop", false, t0, "hello bob"),
			msg(alice, bob, false, t0.Add(time.Second), "hi alice, ünïcødé ✓"),
			msg(bob, alice, true, t0.Add(time.Second), "hi alice, ünïcødé ✓"),
		}
		in[2].Encrypted, in[3].Encrypted = true, true
		in[3].Time = time.Time{} // taken from the ID
		mustAppend(t, a, in...)
		mustFlush(t, a)

		tests := []struct {
			name  string
			owner string
			want  []module.ArchivedMessage
		}{
			{"alice", alice, []module.ArchivedMessage{in[0], in[2]}},
			{"bob", bob, []module.ArchivedMessage{in[1], in[3]}},
			{"nobody", carol, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := mustQuery(t, a, module.ArchiveQuery{Owner: tt.owner})
				if !p.Complete || p.Count != len(tt.want) || len(p.Messages) != len(tt.want) {
					t.Fatalf("page: complete=%v count=%d messages=%d, want %d", p.Complete, p.Count, len(p.Messages), len(tt.want))
				}
				for i, w := range tt.want {
					g := p.Messages[i]
					if w.Time.IsZero() {
						w.Time = idTime(mustParse(t, w.ID))
					}
					if g.ID != w.ID || g.Owner != w.Owner || g.With != w.With || g.Outgoing != w.Outgoing ||
						g.Encrypted != w.Encrypted || !g.Time.Equal(w.Time) || !bytes.Equal(g.Stanza, w.Stanza) {
						t.Errorf("message %d =\n %+v\nwant\n %+v", i, g, w)
					}
				}
			})
		}
		// A new archive on a reopened store (a restart) reads them too.
		a2 := newArchive(t, b.reopen(t).(storage.ArchiveStore), a.cfg.Keys, nil)
		if p := mustQuery(t, a2, module.ArchiveQuery{Owner: alice}); len(p.Messages) != 2 || string(p.Messages[1].Stanza) != string(in[2].Stanza) {
			t.Errorf("after reopen: %d messages", len(p.Messages))
		}
	})
}

func mustParse(t testing.TB, s string) [16]byte {
	t.Helper()
	id, err := ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestAppendValidation(t *testing.T) {
	b := openBackend(t, "sqlite")
	a := newArchive(t, b.store(), testRing(t), func(c *Config) { c.MaxStanzaBytes = 1000 })
	good := msg(alice, bob, true, t0, "x")
	tests := []struct {
		name string
		mod  func(m *module.ArchivedMessage)
	}{
		{"empty id", func(m *module.ArchivedMessage) { m.ID = "" }},
		{"uppercase id", func(m *module.ArchivedMessage) { m.ID = strings.ToUpper(m.ID) }},
		{"uuid v4", func(m *module.ArchivedMessage) { m.ID = "9f1c7a52-3b1e-4f7e-8a4b-2f0c1d2e3f40" }},
		{"not a uuid", func(m *module.ArchivedMessage) { m.ID = "msg-1" }},
		{"empty owner", func(m *module.ArchivedMessage) { m.Owner = "" }},
		{"full owner", func(m *module.ArchivedMessage) { m.Owner = alice + "/phone" }},
		{"NUL in owner", func(m *module.ArchivedMessage) { m.Owner = "al\x00ice@example.com" }},
		{"invalid UTF-8 peer", func(m *module.ArchivedMessage) { m.With = "b\xffb@example.com" }},
		{"empty with", func(m *module.ArchivedMessage) { m.With = "" }},
		{"empty stanza", func(m *module.ArchivedMessage) { m.Stanza = nil }},
		{"stanza too big", func(m *module.ArchivedMessage) { m.Stanza = bytes.Repeat([]byte("x"), 1001) }},
		{"time far from id", func(m *module.ArchivedMessage) { m.Time = m.Time.Add(2 * time.Minute) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good
			tt.mod(&m)
			if err := a.Append(t.Context(), m); !errors.Is(err, ErrInvalid) {
				t.Errorf("Append = %v, want ErrInvalid", err)
			}
		})
	}
	if err := a.Append(t.Context(), good); err != nil {
		t.Fatalf("the good message: %v", err)
	}
	if st := a.Stats(); st.Appended != 1 {
		t.Errorf("Appended = %d, want 1", st.Appended)
	}
}

func TestWrongKEKRefuses(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		ring := testRing(t)
		a := newArchive(t, b.store(), ring, nil)
		mustAppend(t, a, msg(alice, bob, true, t0, "for the right key only"))
		sealed, err := a.Sealer(nil).Seal(alice, []byte("offline-1"), []byte("offline content"))
		if err != nil {
			t.Fatal(err)
		}
		mustFlush(t, a)

		// Same KEK id, other key material: the wrapped data key does not
		// open. Another id: the KEK is unknown.
		other, err := keyring.Generate(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		sameID := mustRing(t, ring.Primary(), other)
		tests := []struct {
			name string
			keys keyring.Provider
			want error
		}{
			{"same id, other key", sameID, keyring.ErrUnwrap},
			{"other id", mustRingOf(t, other), keyring.ErrUnknownKEK},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				bad, err := New(Config{Store: b.reopen(t).(storage.ArchiveStore), Keys: tt.keys})
				if err != nil {
					t.Fatal(err)
				}
				// It refuses to start, and what it is asked anyway does not open.
				if err := bad.Start(t.Context()); !errors.Is(err, tt.want) {
					t.Errorf("Start = %v, want %v", err, tt.want)
				}
				_, err = bad.Query(t.Context(), module.ArchiveQuery{Owner: alice})
				if !errors.Is(err, tt.want) {
					t.Errorf("Query = %v, want %v", err, tt.want)
				}
				if p, err := bad.Sealer(nil).Open(alice, []byte("offline-1"), sealed); err == nil || p != nil {
					t.Errorf("Sealer.Open with the wrong KEK = %q, %v", p, err)
				}
			})
		}
	})
}

// mustRing makes a ring with one key given its id and another key's
// material (through the text format, the only way to choose an id).
func mustRing(t *testing.T, id string, material keyring.Key) *keyring.Ring {
	t.Helper()
	r := mustRingOf(t, material)
	text := strings.Replace(string(r.Marshal()), " "+material.ID+" ", " "+id+" ", 1)
	out, err := keyring.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustRingOf(t *testing.T, keys ...keyring.Key) *keyring.Ring {
	t.Helper()
	r, err := keyring.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSwappedRowFailsToOpen(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		a := newArchive(t, b.store(), testRing(t), nil)
		m1 := msg(alice, bob, true, t0, "alice's secret")
		m2 := msg(alice, bob, true, t0.Add(time.Millisecond), "alice's other secret")
		mb := msg(bob, alice, false, t0.Add(2*time.Millisecond), "bob's own")
		mustAppend(t, a, m1, m2, mb)
		mustFlush(t, a)
		st := b.store()
		rows, err := st.QueryArchive(t.Context(), storage.ArchiveRowQuery{Owner: alice, MinID: idLowest, MaxID: idHighest, Limit: 10})
		if err != nil || len(rows) != 2 {
			t.Fatalf("rows: %d, %v", len(rows), err)
		}
		bobRows, err := st.QueryArchive(t.Context(), storage.ArchiveRowQuery{Owner: bob, MinID: idLowest, MaxID: idHighest, Limit: 10})
		if err != nil || len(bobRows) != 1 {
			t.Fatalf("bob's rows: %d, %v", len(bobRows), err)
		}
		forged := func(owner string, id [16]byte, from storage.ArchiveRow, key int64) storage.ArchiveRow {
			r := from
			r.Owner, r.ID, r.KeyID = owner, id, key
			return r
		}
		tests := []struct {
			name  string
			owner string
			row   storage.ArchiveRow
		}{
			// alice's row copied into bob's archive, with alice's key and
			// with bob's key.
			{"to another owner", bob, forged(bob, idAt(t0.Add(time.Hour)), rows[0], rows[0].KeyID)},
			{"to another owner's key", bob, forged(bob, idAt(t0.Add(2*time.Hour)), rows[0], bobRows[0].KeyID)},
			// alice's first row under another id of hers.
			{"to another id", alice, forged(alice, idAt(t0.Add(3*time.Hour)), rows[0], rows[0].KeyID)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := st.AppendArchive(t.Context(), []storage.ArchiveRow{tt.row}, nil); err != nil {
					t.Fatal(err)
				}
				before := a.Stats().Unreadable
				p := mustQuery(t, a, module.ArchiveQuery{Owner: tt.owner, IDs: []string{FormatID(tt.row.ID)}})
				if len(p.Messages) != 0 {
					t.Errorf("the moved row opened: %q", p.Messages[0].Stanza)
				}
				if got := a.Stats().Unreadable - before; got != 1 {
					t.Errorf("Unreadable grew by %d, want 1", got)
				}
			})
		}
		// The originals still open.
		if p := mustQuery(t, a, module.ArchiveQuery{Owner: alice, IDs: []string{m1.ID, m2.ID}}); len(p.Messages) != 2 {
			t.Errorf("originals: %d open", len(p.Messages))
		}
	})
}

func TestSealer(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		key := make([]byte, seal.KeySize)
		core, err := seal.New(key)
		if err != nil {
			t.Fatal(err)
		}
		a := newArchive(t, b.store(), testRing(t), nil)
		s := a.Sealer(core)
		id := []byte("kontor offline v1\x00bob@example.com/x\x001700000000")
		sealed, err := s.Seal(alice, id, []byte("<message>secret</message>"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(sealed, []byte("secret")) {
			t.Fatal("plaintext in the sealed bytes")
		}
		old, err := core.Seal(alice, id, []byte("sealed before the archive"))
		if err != nil {
			t.Fatal(err)
		}
		tampered := bytes.Clone(sealed)
		tampered[len(tampered)-1] ^= 1
		otherKey := bytes.Clone(sealed)
		otherKey[8] ^= 1 // the data key ID
		tests := []struct {
			name   string
			s      module.Sealer
			owner  string
			id     []byte
			sealed []byte
			want   string // "" for an error
		}{
			{"round trip", s, alice, id, sealed, "<message>secret</message>"},
			{"other owner", s, bob, id, sealed, ""},
			{"other id", s, alice, []byte("other"), sealed, ""},
			{"tampered", s, alice, id, tampered, ""},
			{"other data key", s, alice, id, otherKey, ""},
			{"truncated", s, alice, id, sealed[:20], ""},
			{"empty", s, alice, id, nil, ""},
			{"core seal through the fallback", s, alice, id, old, "sealed before the archive"},
			{"core seal without fallback", a.Sealer(nil), alice, id, old, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p, err := tt.s.Open(tt.owner, tt.id, tt.sealed)
				if tt.want == "" {
					if err == nil {
						t.Errorf("Open = %q, want an error", p)
					}
					return
				}
				if err != nil || string(p) != tt.want {
					t.Errorf("Open = %q, %v, want %q", p, err, tt.want)
				}
			})
		}
		// The offline data key is one per owner and month.
		keys, err := b.store().ArchiveKeys(t.Context(), []storage.ArchiveKeySlot{{Owner: alice, Slice: sliceOf(time.Now()), Class: offlineClass}})
		if err != nil || len(keys) != 1 || !keys[0].KeepUntil.Equal(storage.ArchiveForever) {
			t.Errorf("offline key: %+v, %v", keys, err)
		}
	})
}

// retentionByPeer gives messages with carol a class that is kept forever,
// fails for dave, and gives the rest a short class.
type retentionByPeer struct{}

func (retentionByPeer) Retention(_ context.Context, in RetentionInput) (RetentionClass, error) {
	switch {
	case strings.HasPrefix(in.With, carol):
		return RetentionClass{Name: "legal", Keep: 0}, nil
	case strings.HasPrefix(in.With, "dave@"):
		return RetentionClass{}, errors.New("policy engine unavailable")
	case strings.HasPrefix(in.With, "eve@"):
		return RetentionClass{Name: offlineClass, Keep: time.Hour}, nil
	}
	return RetentionClass{Name: "short", Keep: time.Hour}, nil
}

// holds puts bob on hold, and fails for frank.
type holds struct{}

func (holds) Held(_ context.Context, owner string) (bool, error) {
	switch owner {
	case bob:
		return true, nil
	case "frank@example.com":
		return false, errors.New("hold service down")
	}
	return false, nil
}

func TestPurge(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		start := time.Date(2025, 1, 15, 12, 0, 0, 0, time.UTC)
		clk := newClock(start)
		a := newArchive(t, b.store(), testRing(t), func(c *Config) {
			c.Now, c.Retention, c.Holds, c.PurgeBatch = clk.Now, retentionByPeer{}, holds{}, 3
			c.DefaultRetention = RetentionClass{Name: "fallback", Keep: 48 * time.Hour}
		})
		var short, legal, held, heldErr, fallback []module.ArchivedMessage
		for i := range 7 {
			at := start.Add(time.Duration(i) * time.Second)
			short = append(short, msg(alice, bob, true, at, "short"), msg(alice, "eve@example.com", true, at.Add(time.Millisecond), "reserved class"))
			legal = append(legal, msg(alice, carol, true, at.Add(2*time.Millisecond), "legal"))
			held = append(held, msg(bob, alice, false, at, "held"))
			heldErr = append(heldErr, msg("frank@example.com", alice, false, at, "hold check fails"))
			fallback = append(fallback, msg(alice, "dave@example.com", true, at.Add(3*time.Millisecond), "fallback"))
		}
		for _, set := range [][]module.ArchivedMessage{short, legal, held, heldErr, fallback} {
			mustAppend(t, a, set...)
		}
		mustFlush(t, a)

		count := func(owner, with string) int {
			t.Helper()
			return mustQuery(t, a, module.ArchiveQuery{Owner: owner, With: with, Max: 250}).Count
		}
		slots := func(owner string) map[string]bool {
			t.Helper()
			keys, err := b.store().ArchiveKeys(t.Context(), []storage.ArchiveKeySlot{
				{Owner: owner, Slice: 202501, Class: "short"}, {Owner: owner, Slice: 202501, Class: "legal"},
				{Owner: owner, Slice: 202501, Class: "fallback"}})
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]bool{}
			for _, k := range keys {
				out[k.Class] = true
			}
			return out
		}
		if got := slots(alice); !reflect.DeepEqual(got, map[string]bool{"short": true, "legal": true, "fallback": true}) {
			t.Fatalf("alice's data keys: %v", got)
		}

		steps := []struct {
			name                 string
			at                   time.Time
			wantMessages         int
			wantKeys             int
			aliceShort, aliceAll int
			aliceKeys            map[string]bool
		}{
			{"nothing expired yet", start.Add(30 * time.Minute), 0, 0, 7, 28,
				map[string]bool{"short": true, "legal": true, "fallback": true}},
			// The short class has expired; its key stays until the month
			// is over, plus the class's keep, plus a day.
			{"short messages expired", start.Add(2 * time.Hour), 7, 0, 0, 21,
				map[string]bool{"short": true, "legal": true, "fallback": true}},
			{"fallback expired, month over", time.Date(2025, 2, 1, 1, 0, 0, 0, time.UTC), 14, 0, 0, 7,
				map[string]bool{"short": true, "legal": true, "fallback": true}},
			{"short key destroyed", time.Date(2025, 2, 2, 1, 0, 1, 0, time.UTC), 0, 1, 0, 7,
				map[string]bool{"legal": true, "fallback": true}},
			{"fallback key destroyed", time.Date(2025, 2, 4, 0, 0, 1, 0, time.UTC), 0, 1, 0, 7,
				map[string]bool{"legal": true}},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				clk.Set(st.at)
				res, err := a.Purge(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if res.Messages != st.wantMessages || res.Keys != st.wantKeys {
					t.Errorf("Purge = %+v, want %d messages and %d keys", res, st.wantMessages, st.wantKeys)
				}
				if n := count(alice, bob); n != st.aliceShort {
					t.Errorf("alice keeps %d short messages, want %d", n, st.aliceShort)
				}
				if n := count(alice, ""); n != st.aliceAll {
					t.Errorf("alice keeps %d messages, want %d", n, st.aliceAll)
				}
				if got := slots(alice); !reflect.DeepEqual(got, st.aliceKeys) {
					t.Errorf("alice's data keys: %v, want %v", got, st.aliceKeys)
				}
				// Held owners, and owners whose hold check fails, keep
				// everything, keys included.
				if n := count(bob, ""); n != 7 {
					t.Errorf("bob (on hold) keeps %d, want 7", n)
				}
				if n := count("frank@example.com", ""); n != 7 {
					t.Errorf("frank (hold check fails) keeps %d, want 7", n)
				}
				if !slots(bob)["short"] {
					t.Error("bob's data key was destroyed while he is on hold")
				}
				if res.HeldOwners == 0 && st.wantMessages > 0 {
					t.Errorf("HeldOwners = 0 in %+v", res)
				}
			})
		}
		// A message that arrives already expired is not stored.
		clk.Set(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
		late := msg(alice, bob, true, time.Date(2025, 2, 28, 22, 59, 59, 0, time.UTC), "late")
		late.Time = time.Time{}
		mustAppend(t, a, late)
		mustFlush(t, a)
		if st := a.Stats(); st.ExpiredOnArrival != 1 || st.Purged != 21 || st.DestroyedKeys != 2 {
			t.Errorf("stats = %+v", st)
		}
	})
}

func TestRotation(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		oldKey, err := keyring.Generate(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		newKey, err := keyring.Generate(time.Now().Add(24 * time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		oldRing := mustRingOf(t, oldKey)
		a := newArchive(t, b.store(), oldRing, nil)
		var all []module.ArchivedMessage
		for i := range 12 { // 12 owners: 12 data keys
			owner := fmt.Sprintf("user%02d@example.com", i)
			all = append(all, msg(owner, bob, true, t0.Add(time.Duration(i)*time.Millisecond), "rotate me"))
		}
		mustAppend(t, a, all...)
		sealedOffline, err := a.Sealer(nil).Seal(alice, []byte("off"), []byte("offline before rotation"))
		if err != nil {
			t.Fatal(err)
		}
		mustFlush(t, a)
		st := b.store()
		snapshot := func() map[[16]byte][]byte {
			out := map[[16]byte][]byte{}
			for _, m := range all {
				rows, err := st.QueryArchive(t.Context(), storage.ArchiveRowQuery{Owner: m.Owner, MinID: idLowest, MaxID: idHighest, Limit: 10})
				if err != nil || len(rows) != 1 {
					t.Fatalf("rows of %s: %d, %v", m.Owner, len(rows), err)
				}
				out[rows[0].ID] = rows[0].Sealed
			}
			return out
		}
		before := snapshot()
		both := mustRingOf(t, oldKey, newKey)

		// Interrupted after the first batch of 5.
		stop := errors.New("operator pressed ctrl-c")
		res, err := Rotate(t.Context(), st, both, RotateOptions{Batch: 5, AfterBatch: func(n int64) error {
			if n >= 5 {
				return stop
			}
			return nil
		}})
		if !errors.Is(err, stop) || res.Rewrapped != 5 {
			t.Fatalf("interrupted rotation: %+v, %v", res, err)
		}
		rot, err := st.LatestArchiveRotation(t.Context())
		if err != nil || rot.Target != newKey.ID || !rot.Finished.IsZero() || rot.Rewrapped != 5 {
			t.Fatalf("recorded progress: %+v, %v", rot, err)
		}
		counts, err := st.ArchiveKeyCounts(t.Context())
		if err != nil || counts[oldKey.ID] != 8 || counts[newKey.ID] != 5 {
			t.Fatalf("mid-rotation key counts: %v, %v (13 keys: 12 owners and one offline key)", counts, err)
		}
		// Mid-rotation, a server with both KEKs reads everything.
		mid := newArchive(t, b.reopen(t).(storage.ArchiveStore), both, nil)
		for _, m := range all {
			if p := mustQuery(t, mid, module.ArchiveQuery{Owner: m.Owner}); len(p.Messages) != 1 {
				t.Errorf("%s mid-rotation: %d messages", m.Owner, len(p.Messages))
			}
		}

		// Resumed.
		res, err = Rotate(t.Context(), st, both, RotateOptions{Batch: 5})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Resumed || res.Rewrapped != 8 || res.Total != 13 || !reflect.DeepEqual(res.KeysByKEK, map[string]int64{newKey.ID: 13}) {
			t.Errorf("resumed rotation: %+v", res)
		}
		rot, err = st.LatestArchiveRotation(t.Context())
		if err != nil || rot.Finished.IsZero() || rot.Rewrapped != 13 {
			t.Errorf("recorded rotation: %+v, %v", rot, err)
		}
		// No message was rewritten.
		if after := snapshot(); !reflect.DeepEqual(after, before) {
			t.Error("rotation rewrote messages")
		}
		// The new KEK alone reads everything; the old one alone nothing.
		tests := []struct {
			name string
			keys keyring.Provider
			ok   bool
		}{
			{"new KEK only", mustRingOf(t, newKey), true},
			{"old KEK only", oldRing, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				x, err := New(Config{Store: b.reopen(t).(storage.ArchiveStore), Keys: tt.keys})
				if err != nil {
					t.Fatal(err)
				}
				if err := x.Start(t.Context()); (err == nil) != tt.ok {
					t.Fatalf("Start = %v, want ok=%v", err, tt.ok)
				}
				defer x.Close(t.Context())
				for _, m := range all {
					p, err := x.Query(t.Context(), module.ArchiveQuery{Owner: m.Owner})
					if got := err == nil && len(p.Messages) == 1 && string(p.Messages[0].Stanza) == string(m.Stanza); got != tt.ok {
						t.Fatalf("%s: read=%v, want %v (err %v)", m.Owner, got, tt.ok, err)
					}
				}
				plain, err := x.Sealer(nil).Open(alice, []byte("off"), sealedOffline)
				if got := err == nil && string(plain) == "offline before rotation"; got != tt.ok {
					t.Errorf("offline message: read=%v, want %v (err %v)", got, tt.ok, err)
				}
			})
		}
		// Running it again finds nothing to do.
		res, err = Rotate(t.Context(), st, both, RotateOptions{})
		if err != nil || res.Resumed || res.Rewrapped != 0 {
			t.Errorf("second rotation: %+v, %v", res, err)
		}
	})
}

func TestRotationNeedsBothKEKs(t *testing.T) {
	b := openBackend(t, "sqlite")
	oldKey, _ := keyring.Generate(time.Now())
	newKey, _ := keyring.Generate(time.Now().Add(24 * time.Hour))
	a := newArchive(t, b.store(), mustRingOf(t, oldKey), nil)
	mustAppend(t, a, msg(alice, bob, true, t0, "x"))
	mustFlush(t, a)
	_, err := Rotate(t.Context(), b.store(), mustRingOf(t, newKey), RotateOptions{})
	if !errors.Is(err, keyring.ErrUnknownKEK) {
		t.Fatalf("Rotate without the old KEK = %v, want ErrUnknownKEK", err)
	}
	counts, err := b.store().ArchiveKeyCounts(t.Context())
	if err != nil || counts[oldKey.ID] != 1 {
		t.Errorf("keys after the failed rotation: %v, %v", counts, err)
	}
}

func TestKeyCacheBounded(t *testing.T) {
	b := openBackend(t, "sqlite")
	a := newArchive(t, b.store(), testRing(t), func(c *Config) { c.KeyCacheSize = 3 })
	var all []module.ArchivedMessage
	for i := range 10 {
		all = append(all, msg(fmt.Sprintf("u%d@example.com", i), bob, true, t0.Add(time.Duration(i)*time.Millisecond), "x"))
	}
	mustAppend(t, a, all...)
	mustFlush(t, a)
	for _, m := range all {
		if p := mustQuery(t, a, module.ArchiveQuery{Owner: m.Owner}); len(p.Messages) != 1 {
			t.Errorf("%s: %d messages", m.Owner, len(p.Messages))
		}
	}
	if n := a.Stats().CachedKeys; n > 3 {
		t.Errorf("%d keys cached, want at most 3", n)
	}
	// Entries expire with age.
	clk := newClock(time.Now().Add(2 * time.Hour))
	a.keys.now = clk.Now
	if _, err := a.keys.forIDs(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if p := mustQuery(t, a, module.ArchiveQuery{Owner: all[9].Owner}); len(p.Messages) != 1 {
		t.Error("not readable after the cache entry aged out")
	}
}

func TestPrefs(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		a := newArchive(t, b.store(), testRing(t), nil)
		p, err := a.Prefs(t.Context(), alice)
		if err != nil || !reflect.DeepEqual(p, module.ArchivePrefs{}) {
			t.Fatalf("default prefs = %+v, %v", p, err)
		}
		tests := []struct {
			name  string
			prefs module.ArchivePrefs
			ok    bool
		}{
			{"roster with lists", module.ArchivePrefs{Default: "roster", Always: []string{bob}, Never: []string{carol}}, true},
			{"never", module.ArchivePrefs{Default: "never"}, true},
			{"unknown default", module.ArchivePrefs{Default: "sometimes"}, false},
			{"bad JID", module.ArchivePrefs{Default: "always", Never: []string{""}}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := a.SetPrefs(t.Context(), alice, tt.prefs)
				if (err == nil) != tt.ok {
					t.Fatalf("SetPrefs = %v, want ok=%v", err, tt.ok)
				}
				if !tt.ok {
					if !errors.Is(err, ErrInvalid) {
						t.Errorf("SetPrefs = %v, want ErrInvalid", err)
					}
					return
				}
				got, err := a.Prefs(t.Context(), alice)
				if err != nil || !reflect.DeepEqual(got, tt.prefs) {
					t.Errorf("Prefs = %+v, %v, want %+v", got, err, tt.prefs)
				}
			})
		}
	})
}

func TestErrorsCarryProtocolErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		cond string
	}{
		{"queue full", ErrQueueFull, stanza.ResourceConstraint},
		{"closed", ErrClosed, stanza.ServiceUnavailable},
		{"invalid", fmt.Errorf("%w message: x", ErrInvalid), stanza.BadRequest},
		{"item not found", ErrItemNotFound, stanza.ItemNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var se stanza.Error
			if !errors.As(tt.err, &se) || se.Condition != tt.cond {
				t.Errorf("errors.As(%v) = %+v, want condition %s", tt.err, se, tt.cond)
			}
			if strings.Contains(tt.err.Error(), se.Condition) {
				t.Errorf("the message repeats the condition: %q", tt.err)
			}
		})
	}
	if !errors.Is(ErrItemNotFound, storage.ErrNotFound) || errors.Is(ErrInvalid, storage.ErrNotFound) {
		t.Error("ErrItemNotFound must match storage.ErrNotFound, and only it")
	}
	if se := (stanza.Error{}); errors.As(ErrQueueFull, &se) && se.Type != stanza.Wait {
		t.Errorf("queue full is %s, want wait", se.Type)
	}
}
