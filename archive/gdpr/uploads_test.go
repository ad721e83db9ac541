package gdpr

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kontor.im/kontor/core/mod/upload"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/storage"
)

// uploadAdapter is cmd/kontor's adapter of upload.Files, as the export
// sees it.
type uploadAdapter struct{ f *upload.Files }

func (x uploadAdapter) List(ctx context.Context, owner string) ([]UploadedFile, error) {
	files, err := x.f.List(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]UploadedFile, len(files))
	for i, fi := range files {
		out[i] = UploadedFile{ID: fi.ID, Owner: fi.Owner, Name: fi.Name, Size: fi.Size, ContentType: fi.ContentType,
			Created: fi.Created, Stored: fi.Stored, Until: fi.Until, Class: fi.Class}
	}
	return out, nil
}

func (x uploadAdapter) Open(_ context.Context, f UploadedFile) (io.ReadCloser, error) {
	return x.f.Open(upload.File{ID: f.ID, Owner: f.Owner, Name: f.Name, Size: f.Size, ContentType: f.ContentType,
		Created: f.Created, Stored: f.Stored, Until: f.Until, Class: f.Class})
}

// TestExportUploads: an Art. 15 export of someone with uploaded files
// (core/mod/upload's files, sealed with the archive's keys, on both
// backends) has uploads/index.json listing each of the person's files,
// slots never used included, with name, size, type, times and retention
// class, and uploads/ID/NAME with each stored file's content, decrypted;
// nobody else's files; a file whose content is gone is listed with an
// error; the manifest covers the section.
func TestExportUploads(t *testing.T) {
	forBackends(t, func(t *testing.T, b *backend) {
		tool, a, _ := newTool(t, b, byPeer{})
		key := make([]byte, seal.KeySize)
		rand.Read(key)
		core, err := seal.New(key)
		ok(t, err)
		us, isUploads := b.st.(storage.Uploads)
		if !isUploads {
			t.Fatalf("the %s store keeps no uploads", b.name)
		}
		files := &upload.Files{Store: us, Sealer: a.Sealer(core), Dir: filepath.Join(t.TempDir(), "uploads"), ChunkSize: 1024}
		tool.UploadsSection = UploadsSection(uploadAdapter{files})
		ctx := t.Context()
		at := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)

		report := []byte(marker(t, "report") + strings.Repeat(" quarterly figures", 200))
		photo := make([]byte, 3000)
		rand.Read(photo)
		f1, err := files.Put(ctx, alice, "Q3 report.pdf", "application/pdf", bytes.NewReader(report), int64(len(report)),
			at, at.AddDate(6, 0, 0), "business_letter")
		ok(t, err)
		f2, err := files.Put(ctx, alice, "../photo.png", "image/png", bytes.NewReader(photo), int64(len(photo)),
			at.Add(time.Minute), at.AddDate(0, 0, 90), "internal")
		ok(t, err)
		gone, err := files.Put(ctx, alice, "gone.txt", "text/plain", strings.NewReader("gone"), 4, at.Add(2*time.Minute), time.Time{}, "")
		ok(t, err)
		// The content of "gone" is lost (a purge in flight, a disk error).
		ok(t, os.Remove(filepath.Join(files.Dir, gone.ID[:2], gone.ID)))
		// A slot never used: a record with a sealed name, no content.
		slotID := "00000000000000000000000000000042"
		name, err := files.Sealer.Seal(alice, []byte("upload-name/"+slotID), []byte("never.txt"))
		ok(t, err)
		ok(t, us.CreateUpload(ctx, storage.Upload{ID: slotID, Owner: alice, Name: name, Size: 9, ContentType: "text/plain",
			Created: at.Add(3 * time.Minute), SlotExpires: at.Add(8 * time.Minute)}, 0))
		bobs := marker(t, "bob")
		_, err = files.Put(ctx, "bob@example.com", "bob.txt", "text/plain", strings.NewReader(bobs), int64(len(bobs)), at, time.Time{}, "")
		ok(t, err)

		var out bytes.Buffer
		_, err = tool.Export(ctx, Grant{Operator: "dpo", Purpose: "Art. 15 request"}, alice, &out, ExportOptions{TempDir: t.TempDir()})
		ok(t, err)
		zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
		ok(t, err)
		got := map[string][]byte{}
		var order []string
		for _, zf := range zr.File {
			rc, err := zf.Open()
			ok(t, err)
			data, err := io.ReadAll(rc)
			ok(t, err)
			rc.Close()
			got[zf.Name] = data
			order = append(order, zf.Name)
		}
		checkManifest(t, got, order)

		var index []struct {
			ID, Name, File, Error string
			Size                  int64
			ContentType           string `json:"content_type"`
			Created, Stored       time.Time
			DeletedFrom           time.Time `json:"deleted_from"`
			RetentionClass        string    `json:"retention_class"`
		}
		ok(t, json.Unmarshal(got["uploads/index.json"], &index))
		if len(index) != 4 {
			t.Fatalf("index lists %d files, want alice's 4: %s", len(index), got["uploads/index.json"])
		}
		byName := map[string]int{}
		for i, e := range index {
			byName[e.Name] = i
		}
		r := index[byName["Q3 report.pdf"]]
		if r.ID != f1.ID || r.Size != int64(len(report)) || r.ContentType != "application/pdf" || !r.Created.Equal(at) ||
			!r.Stored.Equal(at) || !r.DeletedFrom.Equal(at.AddDate(6, 0, 0)) || r.RetentionClass != "business_letter" ||
			r.File != "uploads/"+f1.ID+"/Q3 report.pdf" || r.Error != "" {
			t.Errorf("report entry %+v", r)
		}
		if !bytes.Equal(got[r.File], report) {
			t.Errorf("the report's content in the export is %d bytes, not the upload", len(got[r.File]))
		}
		p := index[byName["../photo.png"]]
		if p.File != "uploads/"+f2.ID+"/.._photo.png" || !bytes.Equal(got[p.File], photo) || p.RetentionClass != "internal" {
			t.Errorf("photo entry %+v (%d bytes)", p, len(got[p.File]))
		}
		if g := index[byName["gone.txt"]]; g.File != "" || g.Error == "" || g.Stored.IsZero() {
			t.Errorf("a file without content: %+v, want an error and no file", g)
		}
		if s := index[byName["never.txt"]]; s.File != "" || s.Error != "" || !s.Stored.IsZero() || s.ID != slotID {
			t.Errorf("a slot never used: %+v", s)
		}
		for name, data := range got {
			if bytes.Contains(data, []byte(bobs)) || strings.Contains(name, "bob.txt") {
				t.Errorf("bob's file is in alice's export (%s)", name)
			}
		}
		// The files at rest are sealed: the report's marker is not in them.
		filepath.WalkDir(files.Dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if data, _ := os.ReadFile(path); bytes.Contains(data, report[:40]) {
					t.Errorf("%s holds the report in the clear", path)
				}
			}
			return nil
		})
	})
}
