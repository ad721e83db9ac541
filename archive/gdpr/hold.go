package gdpr

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/storage"
)

// Holds answers archive.HoldChecker from the legal hold table.
type Holds struct{ Store storage.GDPRStore }

var _ archive.HoldChecker = Holds{}

// Held reports whether an active hold names owner.
func (h Holds) Held(ctx context.Context, owner string) (bool, error) {
	holds, err := h.Store.LegalHolds(ctx, owner, false)
	if err != nil {
		return true, err
	}
	return len(holds) > 0, nil
}

// AddHold places a legal hold on subject (a bare JID of a user or room)
// and audits it.
func (t *Tool) AddHold(ctx context.Context, g Grant, subject, caseRef, reason string) (storage.LegalHold, error) {
	if subject == "" || caseRef == "" {
		return storage.LegalHold{}, errors.New("gdpr: a hold needs a subject and a case reference")
	}
	h := storage.LegalHold{Subject: subject, Case: caseRef, Reason: reason, By: g.Operator, Created: t.now()}
	id, err := t.Store.CreateLegalHold(ctx, h)
	if err != nil {
		return h, err
	}
	h.ID = id
	if err := t.audit(ctx, g, "hold.add", subject, reason, map[string]string{"hold_id": strconv.FormatInt(id, 10), "hold_case": caseRef}); err != nil {
		return h, fmt.Errorf("gdpr: hold %d placed, but not audited: %w", id, err)
	}
	return h, nil
}

// ReleaseHold releases hold id and audits it.
func (t *Tool) ReleaseHold(ctx context.Context, g Grant, id int64, reason string) (storage.LegalHold, error) {
	all, err := t.Store.LegalHolds(ctx, "", false)
	if err != nil {
		return storage.LegalHold{}, err
	}
	var h storage.LegalHold
	for _, x := range all {
		if x.ID == id {
			h = x
		}
	}
	if h.ID == 0 {
		return h, fmt.Errorf("gdpr: no active hold %d: %w", id, storage.ErrNotFound)
	}
	at := t.now()
	if err := t.Store.ReleaseLegalHold(ctx, id, g.Operator, at); err != nil {
		return h, err
	}
	h.Released, h.ReleasedBy = at, g.Operator
	if err := t.audit(ctx, g, "hold.release", h.Subject, reason, map[string]string{"hold_id": strconv.FormatInt(id, 10), "hold_case": h.Case}); err != nil {
		return h, fmt.Errorf("gdpr: hold %d released, but not audited: %w", id, err)
	}
	return h, nil
}
