package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/storage"
)

// RotateOptions tune Rotate.
type RotateOptions struct {
	// Batch is how many data keys are rewrapped per transaction (default
	// 500).
	Batch  int
	Logger *slog.Logger
	// AfterBatch, if set, is called after each committed batch with the
	// running total; an error stops the rotation there (it resumes on the
	// next run). Tests use it to interrupt a rotation.
	AfterBatch func(rewrapped int64) error
	Now        func() time.Time
}

// RotateResult says what a rotation did.
type RotateResult struct {
	Target    string
	Resumed   bool  // an interrupted rotation to Target was continued
	Rewrapped int64 // in this run
	Total     int64 // in the whole rotation, earlier interrupted runs included
	// KeysByKEK counts the data keys per KEK after the rotation: a KEK
	// absent from it wraps nothing any more.
	KeysByKEK map[string]int64
}

// rotatePasses bounds the passes over the key table: a server that has
// not yet seen the new primary may wrap a new data key with the old KEK
// during the first pass.
const rotatePasses = 5

// Rotate rewraps every data key that the provider's current KEK does not
// wrap with that KEK, without touching a single message. Progress is
// recorded in the store (each batch commits with its count), so an
// interrupted rotation resumes where it stopped when Rotate runs again;
// until it is finished, the old and the new KEK must both be available.
func Rotate(ctx context.Context, store storage.ArchiveStore, keys keyring.Provider, opts RotateOptions) (RotateResult, error) {
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	target, err := keys.Current(ctx)
	if err != nil {
		return RotateResult{}, fmt.Errorf("archive: rotate: %w", err)
	}
	res := RotateResult{Target: target}
	before, err := store.LatestArchiveRotation(ctx)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return res, fmt.Errorf("archive: rotate: %w", err)
	}
	rot, err := store.StartArchiveRotation(ctx, target, opts.Now())
	if err != nil {
		return res, fmt.Errorf("archive: rotate: %w", err)
	}
	res.Resumed = before.Target == target && before.Finished.IsZero() && rot.Started.Equal(before.Started)
	res.Total = rot.Rewrapped
	if res.Resumed {
		opts.Logger.InfoContext(ctx, "archive: resuming an interrupted key rotation", "target", target, "rewrapped_before", rot.Rewrapped)
	}

	for pass := 0; ; pass++ {
		if pass == rotatePasses {
			return res, fmt.Errorf("archive: rotate: data keys wrapped by an old KEK keep appearing; is a server running with an old key file? restart it and run the rotation again")
		}
		var after int64
		found := false
		for {
			batch, err := store.ArchiveKeysNotUnder(ctx, target, after, opts.Batch)
			if err != nil {
				return res, fmt.Errorf("archive: rotate: %w", err)
			}
			if len(batch) == 0 {
				break
			}
			found = true
			after = batch[len(batch)-1].ID
			rw := make([]storage.ArchiveKeyRewrap, 0, len(batch))
			for _, k := range batch {
				w, err := rewrap(ctx, keys, target, k)
				if err != nil {
					return res, err
				}
				rw = append(rw, w)
			}
			n, err := store.RewrapArchiveKeys(ctx, rw)
			if err != nil {
				return res, fmt.Errorf("archive: rotate: %w", err)
			}
			res.Rewrapped += int64(n)
			res.Total += int64(n)
			opts.Logger.InfoContext(ctx, "archive: rewrapped data keys", "batch", n, "total", res.Total, "target", target)
			if opts.AfterBatch != nil {
				if err := opts.AfterBatch(res.Total); err != nil {
					return res, fmt.Errorf("archive: rotate: interrupted: %w", err)
				}
			}
		}
		if !found {
			break
		}
	}
	if err := store.FinishArchiveRotation(ctx, opts.Now()); err != nil {
		return res, fmt.Errorf("archive: rotate: %w", err)
	}
	if res.KeysByKEK, err = store.ArchiveKeyCounts(ctx); err != nil {
		return res, fmt.Errorf("archive: rotate: %w", err)
	}
	return res, nil
}

// rewrap unwraps one data key with its KEK and wraps it with target.
func rewrap(ctx context.Context, keys keyring.Provider, target string, k storage.ArchiveKey) (storage.ArchiveKeyRewrap, error) {
	ad := slotAD(k.ArchiveKeySlot)
	raw, err := keys.Unwrap(ctx, k.KEKID, k.Wrapped, ad)
	if err != nil {
		return storage.ArchiveKeyRewrap{}, fmt.Errorf("archive: rotate: data key %d: %w (the old and the new KEK must both be in the key ring until the rotation is finished)", k.ID, err)
	}
	defer clear(raw)
	kekID, wrapped, err := keys.Wrap(ctx, raw, ad)
	if err != nil {
		return storage.ArchiveKeyRewrap{}, fmt.Errorf("archive: rotate: %w", err)
	}
	if kekID != target {
		return storage.ArchiveKeyRewrap{}, fmt.Errorf("archive: rotate: the primary KEK changed from %s to %s during the rotation; run it again", target, kekID)
	}
	return storage.ArchiveKeyRewrap{ID: k.ID, OldKEKID: k.KEKID, NewKEKID: kekID, Wrapped: wrapped}, nil
}
