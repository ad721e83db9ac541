package main

// The GDPR tools and uploaded files (XEP-0363): when the upload module is
// enabled, an erasure deletes the person's files and an export includes
// them (uploads/index.json and each file's content). The files are sealed
// as the running server seals them: with the archive's per-person keys
// when the archive is on, else with the core sealing key.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/archive/gdpr"
	"kontor.im/kontor/core/mod/upload"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/storage"
)

// uploadFiles returns the upload module's files, or nil when the module is
// not enabled.
func uploadFiles(cfg *Config, st storage.Store, a *archive.Archive) (*upload.Files, error) {
	if !slices.Contains(cfg.enabledModules(), "upload") {
		return nil, nil
	}
	us, ok := st.(storage.Uploads)
	if !ok {
		return nil, fmt.Errorf("the %s store keeps no uploads", st.Backend())
	}
	dir := filepath.Join(cfg.DataDir, "uploads")
	if o, ok := cfg.Modules.Options["upload"].(map[string]any); ok {
		if d, ok := o["dir"].(string); ok && d != "" {
			dir = d
		}
	}
	key, err := seal.LoadOrCreateKey(cfg.Seal.KeyFile)
	if err != nil {
		return nil, err
	}
	core, err := seal.New(key)
	if err != nil {
		return nil, err
	}
	var sealer module.Sealer = core
	if a != nil {
		sealer = a.Sealer(core)
	}
	return &upload.Files{Store: us, Sealer: sealer, Dir: dir}, nil
}

// gdprUploads adapts upload.Files to what erasure needs.
type gdprUploads struct{ f *upload.Files }

func (g gdprUploads) CountOwner(ctx context.Context, owner string) (int, error) {
	l, err := g.f.List(ctx, owner)
	return len(l), err
}

func (g gdprUploads) DeleteOwner(ctx context.Context, owner string) (int, error) {
	return g.f.DeleteOwner(ctx, owner)
}

// uploadsSection puts a person's uploaded files into an export.
type uploadsSection struct{ f *upload.Files }

func (uploadsSection) Name() string { return "uploaded files" }

// uploadEntry is one file in uploads/index.json.
type uploadEntry struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	ContentType string    `json:"content_type"`
	Created     time.Time `json:"created"`
	Stored      time.Time `json:"stored,omitzero"`
	DeletedFrom time.Time `json:"deleted_from,omitzero"`
	// File is the content's path in the export; "" when the slot was
	// never used or the content cannot be read any more.
	File  string `json:"file,omitempty"`
	Error string `json:"error,omitempty"`
}

func (s uploadsSection) Export(ctx context.Context, subject string, b *gdpr.Bundle, _ func(string) string) error {
	files, err := s.f.List(ctx, subject)
	if err != nil {
		return err
	}
	index := make([]uploadEntry, 0, len(files))
	for _, fi := range files {
		e := uploadEntry{ID: fi.ID, Name: fi.Name, Size: fi.Size, ContentType: fi.ContentType, Created: fi.Created,
			Stored: fi.Stored, DeletedFrom: fi.Until}
		if !fi.Stored.IsZero() {
			if err := s.copyFile(b, fi, &e); err != nil {
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

func (s uploadsSection) copyFile(b *gdpr.Bundle, fi upload.File, e *uploadEntry) error {
	r, err := s.f.Open(fi)
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
