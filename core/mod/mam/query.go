package mam

import (
	"context"
	"time"

	"kontor.im/kontor/core/mamquery"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// The query side of the protocol is core/mamquery, which the muc module
// serves for room archives too; these handlers decide whose archive a
// request reads (only the account's own) and hand it over.

// stampWait bounds how long a query waits for messages stamped for its
// owner to reach the archive's queue (microseconds as a rule).
const stampWait = 2 * time.Second

// query answers an archive query: the results, then the fin.
func (m *Module) query(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	owner, err := ownArchive(iq)
	if err != nil {
		return nil, err
	}
	// A message the owner already holds may not be queued for the
	// archive yet (delivery comes first): wait for it, briefly.
	wctx, cancel := context.WithTimeout(ctx, stampWait)
	m.stamps.waitOwner(wctx, owner.String())
	cancel()
	return m.server.Query(ctx, mamquery.Archive{Owner: owner}, iq.From, iq.Payload(), iq.Origin.Send)
}

// form answers a request for the query form.
func (m *Module) form(_ context.Context, iq *module.IQ) (*stanza.Element, error) {
	if _, err := ownArchive(iq); err != nil {
		return nil, err
	}
	return mamquery.Form(), nil
}

// metadata answers a metadata request: the first and last message of the
// archive.
func (m *Module) metadata(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	owner, err := ownArchive(iq)
	if err != nil {
		return nil, err
	}
	return m.server.Metadata(ctx, mamquery.Archive{Owner: owner})
}
