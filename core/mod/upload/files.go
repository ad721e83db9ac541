package upload

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// The file format of a stored upload. The plaintext is cut into chunks of
// ChunkSize bytes (the last one shorter); each chunk is sealed on its own
// for the owner with the file id and the chunk's index as associated data,
// so a range request opens only the chunks it needs and a chunk moved to
// another place or file fails to open. After the sealed chunks comes a
// table of n+1 big-endian uint64 offsets (the start of each chunk and the
// end of the last), then a 16-byte trailer: the magic "KUP1", the chunk
// size (uint32) and n (uint64). n must be what the record's size and the
// chunk size give, so a file cut short is refused rather than served
// short.
const (
	magic       = "KUP1"
	trailerSize = 16
	// DefaultChunkSize is the plaintext size of a chunk.
	DefaultChunkSize = 64 << 10
)

// ErrNotFound is returned for a file that does not exist or no longer may
// be downloaded.
var ErrNotFound = errors.New("upload: file not found")

// File is what the server holds about one uploaded file, its name opened.
type File struct {
	ID          string
	Owner       string
	Name        string
	Size        int64
	ContentType string
	Created     time.Time
	Stored      time.Time // zero while the slot was not used
	Until       time.Time // when it is deleted; zero: kept
	Class       string    // the retention class Until comes from
}

// Files is the store of uploaded files: records in a storage.Uploads,
// content sealed with a module.Sealer in files under Dir. The upload
// module uses it, and so can the GDPR export and erasure: List, Open and
// DeleteOwner are the whole API they need.
type Files struct {
	Store  storage.Uploads
	Sealer module.Sealer
	// Dir holds the sealed files (one per upload, in subdirectories by
	// the id's first two characters) and tmp/ for uploads in progress.
	Dir string
	// ChunkSize is the plaintext size of a chunk (DefaultChunkSize if 0).
	ChunkSize int
	// Now is the clock the purge of unused slots reads (time.Now if
	// nil); Put keeps its record out of that purge while it writes.
	Now func() time.Time
}

// putWindow is how long Put's record counts as a slot in use: the purge
// deletes slots that were never completed once they expire, and Put
// completes its record when the content is written.
const putWindow = time.Hour

func (f *Files) chunkSize() int {
	if f.ChunkSize > 0 {
		return f.ChunkSize
	}
	return DefaultChunkSize
}

func (f *Files) path(id string) string {
	return filepath.Join(f.Dir, id[:2], id)
}

// nameID is the associated data of a sealed file name.
func nameID(id string) []byte { return []byte("upload-name/" + id) }

// chunkID is the associated data of chunk i of file id.
func chunkID(id string, i uint64) []byte {
	b := make([]byte, 0, len(id)+16)
	b = append(b, "upload/"...)
	b = append(b, id...)
	b = append(b, '/')
	return strconv.AppendUint(b, i, 10)
}

func (f *Files) file(u storage.Upload) (File, error) {
	name, err := f.Sealer.Open(u.Owner, nameID(u.ID), u.Name)
	if err != nil {
		return File{}, fmt.Errorf("upload: open the name of %s: %w", u.ID, err)
	}
	return File{ID: u.ID, Owner: u.Owner, Name: string(name), Size: u.Size, ContentType: u.ContentType,
		Created: u.Created, Stored: u.Stored, Until: u.Until, Class: u.Class}, nil
}

// List returns owner's files, oldest first, including slots not used
// yet (Stored zero).
func (f *Files) List(ctx context.Context, owner string) ([]File, error) {
	us, err := f.Store.UploadsOf(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]File, 0, len(us))
	for _, u := range us {
		fi, err := f.file(u)
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

// Delete removes one file and its record.
func (f *Files) Delete(ctx context.Context, id string) error {
	if err := os.Remove(f.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("upload: delete %s: %w", id, err)
	}
	return f.Store.DeleteUpload(ctx, id)
}

// DeleteOwner removes every file of owner and returns how many there were.
func (f *Files) DeleteOwner(ctx context.Context, owner string) (int, error) {
	us, err := f.Store.UploadsOf(ctx, owner)
	if err != nil {
		return 0, err
	}
	for i, u := range us {
		if err := f.Delete(ctx, u.ID); err != nil {
			return i, err
		}
	}
	return len(us), nil
}

// Lookup returns a stored file that may be downloaded at now.
func (f *Files) Lookup(ctx context.Context, id string, now time.Time) (File, error) {
	u, err := f.Store.Upload(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return File{}, ErrNotFound
	}
	if err != nil {
		return File{}, err
	}
	if u.Stored.IsZero() || (!u.Until.IsZero() && !now.Before(u.Until)) {
		return File{}, ErrNotFound
	}
	return f.file(u)
}

// write seals r (exactly size bytes) into a new file for upload u and
// links it into place; it fails if the file exists.
func (f *Files) write(u storage.Upload, r io.Reader) error {
	tmpDir := filepath.Join(f.Dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(tmpDir, u.ID+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := f.seal(tmp, u, r); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	final := f.path(u.ID)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return err
	}
	// Link, not rename: of two uploads racing for one slot, one wins.
	if err := os.Link(tmp.Name(), final); errors.Is(err, fs.ErrExist) {
		return errExists
	} else if err != nil {
		return err
	}
	return nil
}

// errExists is returned when the file was stored already.
var errExists = errors.New("upload: the file exists")

// errSize is returned when the body is not exactly the slot's size.
var errSize = errors.New("upload: the content is not of the announced size")

func (f *Files) seal(w io.Writer, u storage.Upload, r io.Reader) error {
	cs := f.chunkSize()
	buf := make([]byte, cs)
	var offsets []uint64
	var off, total uint64
	for i := uint64(0); ; i++ {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			total += uint64(n)
			if total > uint64(u.Size) {
				return errSize
			}
			sealed, serr := f.Sealer.Seal(u.Owner, chunkID(u.ID, i), buf[:n])
			if serr != nil {
				return serr
			}
			if _, werr := w.Write(sealed); werr != nil {
				return werr
			}
			offsets = append(offsets, off)
			off += uint64(len(sealed))
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if total != uint64(u.Size) {
		return errSize
	}
	offsets = append(offsets, off)
	tail := make([]byte, 0, len(offsets)*8+trailerSize)
	for _, o := range offsets {
		tail = binary.BigEndian.AppendUint64(tail, o)
	}
	tail = append(tail, magic...)
	tail = binary.BigEndian.AppendUint32(tail, uint32(cs))
	tail = binary.BigEndian.AppendUint64(tail, uint64(len(offsets)-1))
	_, err := w.Write(tail)
	return err
}

// Put stores a whole file of owner at once, as a completed upload (slot
// and content): for tools that bring files in without the HTTP PUT, and
// tests. The name and content are sealed as an upload's are; no quota
// applies.
func (f *Files) Put(ctx context.Context, owner, name, contentType string, content io.Reader, size int64,
	created, until time.Time, class string) (File, error) {
	id := newID()
	sealedName, err := f.Sealer.Seal(owner, nameID(id), []byte(name))
	if err != nil {
		return File{}, err
	}
	created = created.UTC().Truncate(time.Microsecond)
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	// An imported file keeps its original date, often long past: its
	// record must not look like an abandoned slot while it is written.
	u := storage.Upload{ID: id, Owner: owner, Name: sealedName, Size: size, ContentType: contentType,
		Created: created, SlotExpires: now().UTC().Add(putWindow), Until: until, Class: class}
	if err := f.Store.CreateUpload(ctx, u, 0); err != nil {
		return File{}, err
	}
	if err := f.write(u, content); err != nil {
		_ = f.Store.DeleteUpload(ctx, id)
		return File{}, err
	}
	if err := f.Store.CompleteUpload(ctx, id, created); err != nil {
		_ = f.Delete(ctx, id)
		return File{}, err
	}
	u.Stored = created
	return f.file(u)
}

// Open returns the plaintext of a stored file as an io.ReadSeeker that
// opens only the chunks it reads. The caller closes it.
func (f *Files) Open(fi File) (*Reader, error) {
	fh, err := os.Open(f.path(fi.ID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r, err := newReader(fh, fi, f.Sealer)
	if err != nil {
		fh.Close()
		return nil, err
	}
	return r, nil
}

// Reader reads the plaintext of a stored file.
type Reader struct {
	src     io.ReaderAt
	closer  io.Closer
	sealer  module.Sealer
	owner   string
	id      string
	size    int64
	cs      int64
	offsets []uint64
	pos     int64
	cur     int64 // index of the chunk in plain, -1 if none
	plain   []byte
	sealed  []byte
}

// errCorrupt is returned for a file whose structure does not match its
// record.
var errCorrupt = errors.New("upload: stored file is corrupt")

type readerAtCloser interface {
	io.ReaderAt
	io.Closer
	Stat() (os.FileInfo, error)
}

func newReader(fh readerAtCloser, fi File, s module.Sealer) (*Reader, error) {
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	return readerFor(fh, fh, st.Size(), fi, s)
}

func readerFor(src io.ReaderAt, c io.Closer, fileSize int64, fi File, s module.Sealer) (*Reader, error) {
	if fileSize < trailerSize {
		return nil, errCorrupt
	}
	var tr [trailerSize]byte
	if _, err := src.ReadAt(tr[:], fileSize-trailerSize); err != nil {
		return nil, err
	}
	if string(tr[:4]) != magic {
		return nil, errCorrupt
	}
	cs := int64(binary.BigEndian.Uint32(tr[4:8]))
	n := binary.BigEndian.Uint64(tr[8:16])
	if cs <= 0 || fi.Size < 0 || n != uint64((fi.Size+cs-1)/cs) {
		return nil, errCorrupt
	}
	tableSize := int64(n+1) * 8
	if tableSize > fileSize-trailerSize {
		return nil, errCorrupt
	}
	table := make([]byte, tableSize)
	tableStart := fileSize - trailerSize - tableSize
	if _, err := src.ReadAt(table, tableStart); err != nil {
		return nil, err
	}
	offsets := make([]uint64, n+1)
	for i := range offsets {
		offsets[i] = binary.BigEndian.Uint64(table[i*8:])
		if (i == 0 && offsets[i] != 0) || (i > 0 && offsets[i] < offsets[i-1]) {
			return nil, errCorrupt
		}
	}
	if offsets[n] != uint64(tableStart) {
		return nil, errCorrupt
	}
	return &Reader{src: src, closer: c, sealer: s, owner: fi.Owner, id: fi.ID, size: fi.Size, cs: cs,
		offsets: offsets, cur: -1}, nil
}

// Size is the plaintext size.
func (r *Reader) Size() int64 { return r.size }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	k := r.pos / r.cs
	if k != r.cur {
		if err := r.load(k); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.plain[r.pos-k*r.cs:])
	r.pos += int64(n)
	return n, nil
}

func (r *Reader) load(k int64) error {
	lo, hi := r.offsets[k], r.offsets[k+1]
	if hi-lo > uint64(r.cs)+4096 {
		return errCorrupt
	}
	if need := int(hi - lo); cap(r.sealed) < need {
		r.sealed = make([]byte, need)
	} else {
		r.sealed = r.sealed[:need]
	}
	if _, err := r.src.ReadAt(r.sealed, int64(lo)); err != nil {
		return err
	}
	plain, err := r.sealer.Open(r.owner, chunkID(r.id, uint64(k)), r.sealed)
	if err != nil {
		r.cur = -1
		return fmt.Errorf("upload: open chunk %d of %s: %w", k, r.id, err)
	}
	want := min(r.cs, r.size-k*r.cs)
	if int64(len(plain)) != want {
		r.cur = -1
		return errCorrupt
	}
	r.plain, r.cur = plain, k
	return nil
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, errors.New("upload: invalid whence")
	}
	if abs < 0 {
		return 0, errors.New("upload: negative position")
	}
	r.pos = abs
	return abs, nil
}

// Close closes the underlying file.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// newID returns an unguessable file id: 128 random bits in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
