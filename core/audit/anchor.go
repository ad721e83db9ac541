package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// anchor is the state of the saved head file of a Trail.
//
// Lock order: mu is never held while saving; saveMu (one save at a time in
// this process) is taken before the file lock (one save at a time on this
// machine).
type anchor struct {
	path  string
	every time.Duration

	saveMu sync.Mutex

	mu       sync.Mutex // guards the fields below
	timer    *time.Timer
	dirty    bool      // appended since the last save began
	last     time.Time // when the last save began
	closed   bool
	inflight sync.WaitGroup // a save started by the timer
}

// flushTimeout bounds a save started by the timer.
const flushTimeout = time.Minute

// touch notes an append and makes sure a save follows within every.
func (a *anchor) touch(t *Trail) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.dirty = true
	if a.timer != nil {
		return
	}
	wait := max(a.every-time.Since(a.last), 0)
	a.timer = time.AfterFunc(wait, t.flushAnchor)
}

// flushAnchor is the timer's save.
func (t *Trail) flushAnchor() {
	a := t.anchor
	a.mu.Lock()
	a.timer = nil
	if a.closed || !a.dirty {
		a.mu.Unlock()
		return
	}
	a.dirty = false
	a.last = time.Now()
	a.inflight.Add(1)
	a.mu.Unlock()
	defer a.inflight.Done()
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if _, err := t.SaveAnchor(ctx); err != nil {
		t.log.Error("audit trail head not saved", "file", a.path, "err", err)
		a.mu.Lock()
		a.dirty = true // Close, or the next append's save, tries again
		a.mu.Unlock()
	}
}

// Close stops the timer and saves the head if entries were appended since
// the last save. Appends still work after Close, but no longer move the
// saved head. It does not close the store.
func (t *Trail) Close(ctx context.Context) error {
	a := t.anchor
	if a == nil {
		return nil
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	a.mu.Unlock()
	a.inflight.Wait() // a save the timer started; it may leave dirty set
	a.mu.Lock()
	dirty := a.dirty
	a.dirty = false
	a.mu.Unlock()
	if !dirty {
		return nil
	}
	_, err := t.SaveAnchor(ctx)
	return err
}

// ErrNoAnchor is returned by SaveAnchor on a Trail without WithAnchor.
var ErrNoAnchor = errors.New("audit: no head file configured")

// SaveAnchor moves the saved head forward to the trail's newest entry, but
// only over entries it has verified: it walks from the head saved before
// (which the database must still hold) to the newest entry, and writes the
// new head only if that stretch is intact. So the saved head never adopts a
// trail that was cut short or rewritten: the file keeps the last good head
// and SaveAnchor returns the problem (a *Problem). The first save, without
// a file, verifies the whole trail.
//
// Saves are serialised within the process and, with a lock file beside the
// head file, between processes on this machine (the server and `kontor
// user`), so the file only ever moves forward. It returns the head now
// saved.
func (t *Trail) SaveAnchor(ctx context.Context) (Head, error) {
	a := t.anchor
	if a == nil {
		return Head{}, ErrNoAnchor
	}
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return Head{}, fmt.Errorf("audit: save head: %w", err)
	}
	unlock, err := lockFile(a.path + ".lock")
	if err != nil {
		return Head{}, fmt.Errorf("audit: save head: %w", err)
	}
	defer unlock()
	old, err := ReadHeadFile(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		old = Head{}
	} else if err != nil {
		return Head{}, fmt.Errorf("audit: save head: %w (move the file away to start over from a full verification)", err)
	}
	rep, err := t.verifyFrom(ctx, old, VerifyOptions{})
	if err != nil {
		return old, fmt.Errorf("audit: saved head %s kept: %w", old, err)
	}
	if rep.Head.Seq == old.Seq {
		return old, nil
	}
	if err := WriteHeadFile(a.path, rep.Head); err != nil {
		return old, err
	}
	return rep.Head, nil
}

// lockFile takes an exclusive flock(2) on path, creating it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

const headFileComment = `# Kontor audit trail: the newest entry this node verified and saved.
# "kontor audit verify" checks that the database still holds it; keep a copy
# elsewhere too. Written by Kontor; do not edit.
`

// maxHeadFile bounds what ReadHeadFile reads.
const maxHeadFile = 4 << 10

// WriteHeadFile writes h to path atomically (a temporary file renamed over
// it, both synced), readable by the owner only.
func WriteHeadFile(path string, h Head) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".audit.head-*")
	if err != nil {
		return fmt.Errorf("audit: write head: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("audit: write head: %w", err)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := io.WriteString(f, headFileComment+h.String()+"\n"); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the rename survives a crash
		d.Close()
	}
	return nil
}

// ReadHeadFile reads a head written by WriteHeadFile. A missing file is an
// error matching fs.ErrNotExist.
func ReadHeadFile(path string) (Head, error) {
	f, err := os.Open(path)
	if err != nil {
		return Head{}, fmt.Errorf("audit: read head: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxHeadFile+1))
	if err != nil {
		return Head{}, fmt.Errorf("audit: read head: %w", err)
	}
	h, err := ParseHeadFile(b)
	if err != nil {
		return Head{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return h, nil
}

// ParseHeadFile parses the contents of a head file: comment lines starting
// with '#', blank lines, and exactly one head ("SEQ:HEX").
func ParseHeadFile(b []byte) (Head, error) {
	if len(b) > maxHeadFile {
		return Head{}, errors.New("audit: head file: too large")
	}
	var (
		h     Head
		found bool
	)
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if found {
			return Head{}, errors.New("audit: head file: more than one head")
		}
		var err error
		if h, err = ParseHead(line); err != nil {
			return Head{}, fmt.Errorf("audit: head file: %w", err)
		}
		found = true
	}
	if !found {
		return Head{}, errors.New("audit: head file: no head in it")
	}
	return h, nil
}

// ParseHead parses "SEQ:HEX" (as Head.String and `kontor audit verify`
// print it): a sequence number from 1 and a SHA-256 hash in hex.
func ParseHead(s string) (Head, error) {
	num, hexHash, ok := strings.Cut(s, ":")
	if !ok {
		return Head{}, fmt.Errorf("head %q: want SEQ:HASH", truncate(s, 80))
	}
	if num == "" || len(num) > 19 || strings.TrimLeft(num, "0123456789") != "" {
		return Head{}, fmt.Errorf("head %q: %q is not a sequence number", truncate(s, 80), truncate(num, 20))
	}
	seq, err := strconv.ParseInt(num, 10, 64)
	if err != nil || seq < 1 {
		return Head{}, fmt.Errorf("head %q: %q is not a sequence number", truncate(s, 80), num)
	}
	hash, err := hex.DecodeString(hexHash)
	if err != nil || len(hash) != HashSize {
		return Head{}, fmt.Errorf("head %q: the hash is not %d hex digits", truncate(s, 80), 2*HashSize)
	}
	return Head{Seq: seq, Hash: hash}, nil
}
