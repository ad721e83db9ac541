package storage

import (
	"context"
	"time"
)

// Upload is the record of one XEP-0363 file: the slot a client asked for
// and, once the client uploaded it, the stored file. The content is not
// here: the upload module keeps it, encrypted, in files of its own; the
// file name is sealed by the module too (Name holds the sealed bytes).
type Upload struct {
	// ID is the file's unguessable id (in its URLs), unique per store.
	ID string
	// Owner is the uploader's canonical bare JID.
	Owner string
	// Name is the file name as sealed by the module (opaque here).
	Name []byte
	// Size is the size in bytes the slot was granted for.
	Size        int64
	ContentType string
	// Created is when the slot was granted; SlotExpires is when the PUT
	// URL stops working if nothing was uploaded.
	Created, SlotExpires time.Time
	// Stored is when the upload completed; zero while it has not.
	Stored time.Time
	// Until is when the file must be deleted; zero keeps it.
	Until time.Time
	// Class is the retention class Until comes from ("" if unknown).
	Class string
}

// Uploads stores the records of XEP-0363 uploads. Times are kept to the
// microsecond, in UTC. Records are not removed by DeleteAccount: erasure
// goes through the upload module, which also removes the files.
type Uploads interface {
	// CreateUpload records a new slot. If the owner's uploads (stored or
	// not) would then total more than quota bytes (quota > 0), nothing is
	// recorded and an error wrapping ErrQuotaExceeded is returned; the
	// check and the insert are atomic with respect to every other writer.
	// An ID that exists is an error wrapping ErrExists.
	CreateUpload(ctx context.Context, u Upload, quota int64) error
	// Upload returns one record, or an error wrapping ErrNotFound.
	Upload(ctx context.Context, id string) (Upload, error)
	// CompleteUpload marks a slot stored at the given time. It returns an
	// error wrapping ErrNotFound unless the record exists and was not
	// completed before.
	CompleteUpload(ctx context.Context, id string, at time.Time) error
	// UploadsOf returns every record of owner, oldest first (by Created,
	// then ID).
	UploadsOf(ctx context.Context, owner string) ([]Upload, error)
	// DeleteUpload removes a record; a missing one is not an error.
	DeleteUpload(ctx context.Context, id string) error
	// ExpiredUploads returns at most limit records due for deletion at
	// now: stored ones whose Until has passed, and slots never completed
	// whose SlotExpires has passed.
	ExpiredUploads(ctx context.Context, now time.Time, limit int) ([]Upload, error)
}
