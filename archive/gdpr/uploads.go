package gdpr

// The uploads section of an export: a person's uploaded files (XEP-0363),
// kept by the upload module outside the stores this package knows.

import (
	"context"
	"encoding/json"
	"io"
	"path"
	"strings"
	"time"
)

// UploadedFile is one uploaded file as the export lists it.
type UploadedFile struct {
	ID          string
	Owner       string // the uploader's bare JID (the files are sealed for it)
	Name        string // as the uploader named it
	Size        int64
	ContentType string
	Created     time.Time // slot granted
	Stored      time.Time // content uploaded; zero: never
	Until       time.Time // deleted then; zero: kept
	Class       string    // the retention class Until comes from
}

// UploadFiles is what an export needs of the uploaded files: cmd/kontor
// adapts core/mod/upload's Files to it.
type UploadFiles interface {
	// List returns owner's files, oldest first, with slots never used.
	List(ctx context.Context, owner string) ([]UploadedFile, error)
	// Open returns a stored file's content, decrypted.
	Open(ctx context.Context, f UploadedFile) (io.ReadCloser, error)
}

// UploadsSection returns the export section of a person's uploaded files
// (Tool.UploadsSection): uploads/index.json lists every file (name, size,
// type, when granted, uploaded and deleted, the retention class) and
// uploads/ID/NAME holds each stored file's content, decrypted. A file that
// cannot be read any more (its key was destroyed) is listed with the error
// instead of a path.
func UploadsSection(f UploadFiles) Section { return uploadsSection{f} }

type uploadsSection struct{ f UploadFiles }

func (uploadsSection) Name() string { return "uploaded files" }

// uploadEntry is one file in uploads/index.json.
type uploadEntry struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Size           int64     `json:"size"`
	ContentType    string    `json:"content_type"`
	Created        time.Time `json:"created"`
	Stored         time.Time `json:"stored,omitzero"`
	DeletedFrom    time.Time `json:"deleted_from,omitzero"`
	RetentionClass string    `json:"retention_class,omitempty"`
	// File is the content's path in the export; "" when the slot was
	// never used or the content cannot be read any more.
	File  string `json:"file,omitempty"`
	Error string `json:"error,omitempty"`
}

func (s uploadsSection) Export(ctx context.Context, subject string, b *Bundle, _ func(string) string) error {
	files, err := s.f.List(ctx, subject)
	if err != nil {
		return err
	}
	index := make([]uploadEntry, 0, len(files))
	for _, fi := range files {
		e := uploadEntry{ID: fi.ID, Name: fi.Name, Size: fi.Size, ContentType: fi.ContentType, Created: fi.Created,
			Stored: fi.Stored, DeletedFrom: fi.Until, RetentionClass: fi.Class}
		if !fi.Stored.IsZero() {
			if err := s.copyFile(ctx, b, fi, &e); err != nil {
				e.Error = err.Error()
			}
		}
		index = append(index, e)
	}
	w, err := b.Create("uploads/index.json")
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(index)
}

func (s uploadsSection) copyFile(ctx context.Context, b *Bundle, fi UploadedFile, e *uploadEntry) error {
	r, err := s.f.Open(ctx, fi)
	if err != nil {
		return err
	}
	defer r.Close()
	name := strings.Map(func(c rune) rune {
		if c == '/' || c == '\\' || c < 0x20 {
			return '_'
		}
		return c
	}, fi.Name)
	if name == "" || name == "." || name == ".." {
		name = "file"
	}
	p := path.Join("uploads", fi.ID, name)
	w, err := b.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	e.File = p
	return nil
}
