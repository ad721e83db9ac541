package keyring

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// maxFileSize bounds what a key file may hold (1000 keys fit easily).
const maxFileSize = 256 << 10

// File is a Provider backed by a key file. It reads the file again when the
// file has changed (it is replaced atomically by `kontor keys rotate`), so a
// running server picks up a new primary key for the data keys it creates,
// and can unwrap data keys that a rotation has rewrapped meanwhile.
type File struct {
	path string

	mu    sync.Mutex // guards ring and stamp
	ring  *Ring
	stamp fileStamp
}

var _ Provider = (*File)(nil)

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	ino, size, mod int64
}

func stampOf(fi fs.FileInfo) fileStamp {
	st := fileStamp{size: fi.Size(), mod: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = int64(sys.Ino)
	}
	return st
}

// OpenFile loads a key file. It refuses a file that others than its owner
// and group may read or write, or that the group may write.
func OpenFile(path string) (*File, error) {
	r, st, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return &File{path: path, ring: r, stamp: st}, nil
}

func readFile(path string) (*Ring, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("keyring: %w", err)
	}
	if err := checkMode(path, fi); err != nil {
		return nil, fileStamp{}, err
	}
	if fi.Size() > maxFileSize {
		return nil, fileStamp{}, fmt.Errorf("keyring: %s is larger than %d bytes", path, maxFileSize)
	}
	b := make([]byte, fi.Size()+1)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fileStamp{}, fmt.Errorf("keyring: %s: %w", path, err)
	}
	defer clear(b)
	if n > int(fi.Size()) {
		return nil, fileStamp{}, fmt.Errorf("keyring: %s changed while it was read", path)
	}
	r, err := Parse(b[:n])
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return r, stampOf(fi), nil
}

func checkMode(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("keyring: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return fmt.Errorf("keyring: %s has mode %04o: others must have no access and the group no write access (chmod 600 %s)", path, perm, path)
	}
	return nil
}

// current returns the ring, read again if the file changed. A file that
// changed and no longer reads is an error: better to stop wrapping new data
// keys than to guess.
func (f *File) current() (*Ring, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if stampOf(fi) == f.stamp {
		return f.ring, nil
	}
	r, st, err := readFile(f.path)
	if err != nil {
		return nil, err
	}
	f.ring, f.stamp = r, st
	return r, nil
}

// Ring returns the key ring as the file holds it now.
func (f *File) Ring() (*Ring, error) { return f.current() }

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Current returns the id of the primary key.
func (f *File) Current(context.Context) (string, error) {
	r, err := f.current()
	if err != nil {
		return "", err
	}
	return r.Primary(), nil
}

// Wrap wraps with the primary key.
func (f *File) Wrap(ctx context.Context, key, ad []byte) (string, []byte, error) {
	r, err := f.current()
	if err != nil {
		return "", nil, err
	}
	return r.Wrap(ctx, key, ad)
}

// Unwrap unwraps with the key kekID.
func (f *File) Unwrap(ctx context.Context, kekID string, wrapped, ad []byte) ([]byte, error) {
	r, err := f.current()
	if err != nil {
		return nil, err
	}
	return r.Unwrap(ctx, kekID, wrapped, ad)
}

// Env returns the key ring held by the environment variable name. A process
// cannot see its environment change, so a rotation with keys from the
// environment needs a restart with both keys set first.
func Env(name string) (*Ring, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return nil, fmt.Errorf("keyring: environment variable %s is not set", name)
	}
	r, err := Parse([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("%w (in $%s)", err, name)
	}
	return r, nil
}

// CreateFile writes a new key file with one new key (mode 0600, its
// directory created with mode 0700). It refuses to overwrite a file.
func CreateFile(path string, now time.Time) (*Ring, error) {
	k, err := Generate(now)
	if err != nil {
		return nil, err
	}
	r, err := NewRing(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	fd, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	data := r.Marshal()
	defer clear(data)
	if _, err := fd.Write(data); err != nil {
		fd.Close()
		os.Remove(path)
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if err := errors.Join(fd.Sync(), fd.Close()); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return r, syncDir(filepath.Dir(path))
}

// ReplaceFile atomically replaces the key file's ring: a temporary file in
// the same directory, synced, renamed over it, and the directory synced, so
// that a crash leaves either the old file or the new one.
func ReplaceFile(path string, r *Ring) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := checkMode(path, fi); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".kek-*")
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(fi.Mode().Perm()); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		_ = tmp.Chown(int(sys.Uid), int(sys.Gid)) // keep the owner when run as root
	}
	data := r.Marshal()
	defer clear(data)
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	done = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("keyring: sync %s: %w", dir, err)
	}
	return nil
}
