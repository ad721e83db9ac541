package gdpr

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kontor.im/kontor/core/storage"
)

// Erasure tombstones
//
// Directory sync creates an account for every entry it reads; without more,
// the next sync after an erasure would bring the erased person back (a new
// account with their name, vCard and group rosters). So Erase writes a
// tombstone before it removes the directory link: keyed hashes of the JID
// and of the linked entries' stable ids (objectGUID, entryUUID). A sync skips
// an entry that matches an active tombstone by either hash (the JID, or the
// stable id when the person was renamed in the directory since) and reports
// it as "erased, skipped", until a DPO runs `kontor gdpr reinstate USER`.
//
// The hashes are HMAC-SHA-256 under the tombstone key, a file of 32 random
// bytes kept beside the erasure log (outside the data directory, like the
// key-encryption key): whoever has the database or a backup of it cannot
// test a name against the tombstones. The erasure log beside it names the
// erased in the clear already; the database never does. Losing the key
// makes the tombstones unmatchable, so a sync with active tombstones and no
// key fails rather than create anyone (TombstoneMatcher).

// TombstoneKeySize is the size of the tombstone key.
const TombstoneKeySize = 32

// LoadTombstoneKey reads the tombstone key at path; with create, a missing
// file is created with a new random key (mode 0600). Without create, a
// missing file returns a nil key and no error.
func LoadTombstoneKey(path string, create bool) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if !create {
			return nil, nil
		}
		key := make([]byte, TombstoneKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("gdpr: tombstone key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) { // another process made it first
			return LoadTombstoneKey(path, false)
		}
		if err != nil {
			return nil, fmt.Errorf("gdpr: tombstone key: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			return nil, fmt.Errorf("gdpr: tombstone key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gdpr: tombstone key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != TombstoneKeySize {
		return nil, fmt.Errorf("gdpr: tombstone key %s: not %d hex-encoded bytes", path, TombstoneKeySize)
	}
	return key, nil
}

// Tombstones matches directory entries against the erasure tombstones.
type Tombstones struct {
	Store storage.GDPRStore
	// Key is the tombstone key; nil when there is none (yet).
	Key []byte
	// KeyFile, when Key is nil, is where ErasedMatcher reads the key on
	// each call (a running server sees a key the first erasure made).
	KeyFile string
}

func tombstoneHash(key []byte, kind, value string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("kontor erasure tombstone v1\x00" + kind + "\x00" + value))
	return m.Sum(nil)
}

// HashJID is the tombstone hash of a bare JID.
func (t Tombstones) HashJID(j string) []byte { return tombstoneHash(t.Key, "jid", j) }

// HashStableID is the tombstone hash of a directory stable id (compared
// case-insensitively: a GUID's hex digits may come in either case).
func (t Tombstones) HashStableID(id string) []byte {
	return tombstoneHash(t.Key, "stable_id", strings.ToLower(id))
}

// ErasedMatcher returns a function that reports whether a directory entry
// (its JID and stable id) belongs to an erased person who was not
// reinstated since. It reads the active tombstones once; a sync calls it
// once per run. With active tombstones and no key it fails: it cannot tell.
func (t Tombstones) ErasedMatcher(ctx context.Context) (func(jid, stableID string) bool, error) {
	ts, err := t.Store.ErasureTombstones(ctx, false)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return func(string, string) bool { return false }, nil
	}
	if len(t.Key) == 0 && t.KeyFile != "" {
		if t.Key, err = LoadTombstoneKey(t.KeyFile, false); err != nil {
			return nil, err
		}
	}
	if len(t.Key) == 0 {
		return nil, fmt.Errorf("gdpr: %d erasure tombstones exist but the tombstone key is missing: restore it from the backup of the key files", len(ts))
	}
	jids, stable := map[string]bool{}, map[string]bool{}
	for _, x := range ts {
		jids[string(x.JIDHash)] = true
		if len(x.StableHash) > 0 {
			stable[string(x.StableHash)] = true
		}
	}
	return func(j, id string) bool {
		return jids[string(t.HashJID(j))] || (id != "" && stable[string(t.HashStableID(id))])
	}, nil
}

// bury writes the tombstones of subject: one per linked directory entry,
// or one of the JID alone when there is none.
func (t *Tool) bury(ctx context.Context, subject, job string) error {
	if err := t.tombstoneKey(true); err != nil {
		return err
	}
	if len(t.TombstoneKey) == 0 {
		return nil
	}
	ts := Tombstones{Store: t.Store, Key: t.TombstoneKey}
	ids, err := t.Store.LDAPStableIDsOf(ctx, subject)
	if err != nil {
		return err
	}
	jh := ts.HashJID(subject)
	if len(ids) == 0 {
		ids = []string{""}
	}
	for _, id := range ids {
		var sh []byte
		if id != "" {
			sh = ts.HashStableID(id)
		}
		if err := t.Store.PutErasureTombstone(ctx, storage.ErasureTombstone{JIDHash: jh, StableHash: sh, Job: job, Created: t.now()}); err != nil {
			return err
		}
	}
	return nil
}

// Reinstate allows directory sync to create subject's account again: the
// DPO's decision, audited (gdpr.reinstate). It returns how many tombstones
// it lifted; none is an error (there is nothing to reinstate).
func (t *Tool) Reinstate(ctx context.Context, g Grant, subject, reason string) (int, error) {
	if err := t.tombstoneKey(false); err != nil {
		return 0, err
	}
	if len(t.TombstoneKey) == 0 {
		return 0, errors.New("gdpr: reinstate: no tombstone key, so no tombstones to lift")
	}
	ts := Tombstones{Store: t.Store, Key: t.TombstoneKey}
	jh := ts.HashJID(subject)
	active, err := t.Store.ErasureTombstones(ctx, false)
	if err != nil {
		return 0, err
	}
	jobs := map[string]bool{}
	for _, x := range active {
		if bytes.Equal(x.JIDHash, jh) {
			jobs[x.Job] = true
		}
	}
	if len(jobs) == 0 {
		return 0, fmt.Errorf("gdpr: reinstate: %s has no active erasure tombstone", subject)
	}
	n, err := t.Store.ReinstateErasureTombstones(ctx, jh, g.Operator, t.now())
	if err != nil {
		return 0, err
	}
	details := map[string]string{"tombstones": fmt.Sprint(n), "jobs": strings.Join(sortedKeys(jobs), ",")}
	if err := t.audit(ctx, g, "gdpr.reinstate", subject, reason, details); err != nil {
		return n, fmt.Errorf("gdpr: %s reinstated, but not audited: %w", subject, err)
	}
	t.progress("reinstate %s: %d tombstones lifted at %s", subject, n, t.now().Format(time.RFC3339))
	return n, nil
}

// tombstoneKey loads TombstoneKey from TombstoneKeyFile if needed.
func (t *Tool) tombstoneKey(create bool) error {
	if len(t.TombstoneKey) > 0 || t.TombstoneKeyFile == "" {
		return nil
	}
	k, err := LoadTombstoneKey(t.TombstoneKeyFile, create)
	if err != nil {
		return err
	}
	t.TombstoneKey = k
	return nil
}
