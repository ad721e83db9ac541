package gdpr

import (
	"context"
	"fmt"

	"kontor.im/kontor/core/storage"
)

// # Erasures after a restore
//
// Restoring a backup rolls the database back, and with it every erasure
// done since the backup was taken: the person's account, roster, archive
// rows and wrapped data keys are back. The erasure log, kept outside the
// database, is what says so. An erasure is in the database when its audit
// entry (gdpr.erase, written once every step is done, with the job id in
// its details) is in the database's audit trail: the trail is restored
// together with the data, so a job of the log whose entry the trail lacks
// was undone by a restore (or never finished).
//
// Missing compares the log with the trail; Replay erases each such person
// again (the same idempotent Erase, with ReplayOf naming the undone job).
// `kontor restore` replays at its end, and `kontor serve` at start, before
// it listens, so that a database restored by hand (pg_restore, a copied
// file) is covered too.
//
// Only the latest job of each person counts: a person erased, then
// created anew (a new colleague with the same address) and not erased
// again keeps the new account, because the old job's entry is in the trail.

// Missing returns the people of the erasure log at logPath whose latest
// erasure job has no gdpr.erase entry in the store's audit trail, in the
// order the log first names them.
func Missing(ctx context.Context, st storage.AuditStore, logPath string) ([]ErasureRecord, error) {
	recs, err := ReadErasureLog(logPath)
	if err != nil {
		return nil, err
	}
	var out []ErasureRecord
	for _, r := range recs {
		done, err := erasureAudited(ctx, st, r.Subject, r.Job)
		if err != nil {
			return nil, err
		}
		if !done {
			out = append(out, r)
		}
	}
	return out, nil
}

// erasureAudited reports whether the trail holds the gdpr.erase entry of
// job about subject.
func erasureAudited(ctx context.Context, st storage.AuditStore, subject, job string) (bool, error) {
	q := storage.AuditQuery{Subject: subject, Action: "gdpr.erase", Limit: 1000}
	for {
		recs, err := st.AuditRecords(ctx, q)
		if err != nil {
			return false, fmt.Errorf("gdpr: audit trail: %w", err)
		}
		for _, r := range recs {
			if r.Action == "gdpr.erase" && r.Details["job"] == job {
				return true, nil
			}
		}
		if len(recs) < q.Limit {
			return false, nil
		}
		q.After = recs[len(recs)-1].Seq
	}
}

// Replay erases again each person of recs (from Missing) under grant g,
// and returns the certificates. It stops at the first failure: the
// erasures not yet replayed are still missing, and the next Missing
// finds them again.
func (t *Tool) Replay(ctx context.Context, g Grant, recs []ErasureRecord) ([]Certificate, error) {
	var certs []Certificate
	for _, r := range recs {
		reason := fmt.Sprintf("replay of erasure job %s (started %s by %s): the database was restored from a backup that predates it",
			r.Job, r.Started.UTC().Format("2006-01-02T15:04:05Z"), dash(r.By))
		if !r.Completed {
			reason = fmt.Sprintf("completion of unfinished erasure job %s (started %s by %s)",
				r.Job, r.Started.UTC().Format("2006-01-02T15:04:05Z"), dash(r.By))
		}
		cert, err := t.Erase(ctx, g, r.Subject, EraseOptions{Reason: reason, ReplayOf: r.Job})
		if err != nil {
			return certs, err
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
