package main

// The GDPR tools and uploaded files (XEP-0363): when the upload module is
// enabled, an erasure deletes the person's files and an export includes
// them (uploads/index.json and each file's content). The files are sealed
// as the running server seals them: with the archive's per-person keys
// when the archive is on, else with the core sealing key.

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"

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

// exportUploads adapts upload.Files to what the export's uploads section
// (gdpr.UploadsSection) needs.
type exportUploads struct{ f *upload.Files }

func (x exportUploads) List(ctx context.Context, owner string) ([]gdpr.UploadedFile, error) {
	files, err := x.f.List(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]gdpr.UploadedFile, len(files))
	for i, fi := range files {
		out[i] = gdpr.UploadedFile{ID: fi.ID, Owner: fi.Owner, Name: fi.Name, Size: fi.Size, ContentType: fi.ContentType,
			Created: fi.Created, Stored: fi.Stored, Until: fi.Until, Class: fi.Class}
	}
	return out, nil
}

func (x exportUploads) Open(_ context.Context, f gdpr.UploadedFile) (io.ReadCloser, error) {
	return x.f.Open(upload.File{ID: f.ID, Owner: f.Owner, Name: f.Name, Size: f.Size, ContentType: f.ContentType,
		Created: f.Created, Stored: f.Stored, Until: f.Until, Class: f.Class})
}
