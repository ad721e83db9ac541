package main

import (
	"context"
	"errors"

	"kontor.im/kontor/core/directory"
)

// directorySinks hands each directory snapshot to the policy engine first,
// then to every module that follows the directory (muc's directory
// rooms). Every sink gets the snapshot even when one fails; the errors
// are joined.
type directorySinks []directory.Sink

func (s directorySinks) UpdateDirectory(ctx context.Context, snap directory.Snapshot) error {
	var errs []error
	for _, x := range s {
		errs = append(errs, x.UpdateDirectory(ctx, snap))
	}
	return errors.Join(errs...)
}
