package gdpr

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"time"
)

// ManifestFile is one file of an export or eDiscovery set, with its
// SHA-256.
type ManifestFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest lists every other file of an export.
type Manifest struct {
	Schema    string         `json:"schema"`
	Subject   string         `json:"subject,omitempty"`
	Generated time.Time      `json:"generated"`
	Files     []ManifestFile `json:"files"`
}

// Bundle writes the files of an export into one zip, hashing each as it is
// written; Close adds manifest.json last. Sections added later (uploaded
// files) write through it too.
type Bundle struct {
	zw    *zip.Writer
	cur   *hashingWriter
	files []ManifestFile
	at    time.Time
}

type hashingWriter struct {
	name string
	w    io.Writer
	h    hash.Hash
	n    int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	return n, err
}

func newBundle(w io.Writer, at time.Time) *Bundle { return &Bundle{zw: zip.NewWriter(w), at: at} }

// Create starts the next file; the previous one is finished.
func (b *Bundle) Create(name string) (io.Writer, error) {
	b.finish()
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: b.at})
	if err != nil {
		return nil, fmt.Errorf("gdpr: export: %w", err)
	}
	b.cur = &hashingWriter{name: name, w: w, h: sha256.New()}
	return b.cur, nil
}

func (b *Bundle) finish() {
	if b.cur != nil {
		b.files = append(b.files, ManifestFile{Name: b.cur.name, Size: b.cur.n, SHA256: hex.EncodeToString(b.cur.h.Sum(nil))})
		b.cur = nil
	}
}

// close writes the manifest and ends the zip.
func (b *Bundle) close(m Manifest) (Manifest, error) {
	b.finish()
	m.Files = b.files
	w, err := b.zw.CreateHeader(&zip.FileHeader{Name: "manifest.json", Method: zip.Deflate, Modified: b.at})
	if err != nil {
		return m, err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return m, err
	}
	return m, b.zw.Close()
}
