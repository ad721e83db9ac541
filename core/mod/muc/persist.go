package muc

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/storage"
)

// storedRoom is what is kept of a persistent room: sealed with the room's
// JID as owner before it reaches the store (it may hold a password).
type storedRoom struct {
	Config       Config            `json:"config"`
	Affiliations map[string]string `json:"affiliations"`
	Subject      string            `json:"subject"`
	SubjectFrom  string            `json:"subject_from"`
	Secret       []byte            `json:"secret"` // keys occupant ids
	Directory    []string          `json:"directory,omitempty"`
	Created      time.Time         `json:"created,omitzero"`
	Nicks        map[string]string `json:"nicks,omitempty"`
}

// load restores the stored rooms of the service.
func (m *Module) load(ctx context.Context) error {
	if m.store == nil {
		return nil
	}
	list, err := m.store.MUCRooms(ctx, m.service.String())
	if err != nil {
		return fmt.Errorf("muc: loading rooms: %w", err)
	}
	for _, rec := range list {
		bare, err := jid.Parse(rec.JID)
		if err != nil {
			return fmt.Errorf("muc: stored room %q: %w", rec.JID, err)
		}
		plain, err := m.sealer.Open(rec.JID, []byte(rec.JID), rec.State)
		if err != nil {
			return fmt.Errorf("muc: opening stored room %s: %w", rec.JID, err)
		}
		// A field a stored room lacks (stored by an older version) keeps
		// the default.
		st := storedRoom{Config: DefaultConfig()}
		st.Config.HistoryLength = m.opts.MaxHistory
		if err := json.Unmarshal(plain, &st); err != nil {
			return fmt.Errorf("muc: stored room %s: %w", rec.JID, err)
		}
		r := newRoom(bare)
		r.cfg, r.subject, r.created = st.Config, st.Subject, st.Created
		if st.Affiliations != nil {
			r.affiliations = st.Affiliations
		}
		if len(st.Secret) > 0 {
			r.secret = st.Secret
		}
		if st.SubjectFrom != "" {
			r.subjectFrom, _ = jid.Parse(st.SubjectFrom)
		}
		if len(st.Nicks) > 0 {
			r.nicks = st.Nicks
		}
		if st.Directory != nil {
			r.directory = map[string]bool{}
			for _, d := range st.Directory {
				r.directory[d] = true
			}
		}
		m.rooms[bare.String()] = r
	}
	return nil
}

// persist stores a persistent room's state, or removes a room that is no
// longer persistent, if r is still the room at its address (see
// Module.storeMu). A failure is logged: the room goes on in memory.
func (m *Module) persist(ctx context.Context, r *room) {
	if m.store == nil {
		return
	}
	m.storeMu.Lock()
	defer m.storeMu.Unlock()
	m.mu.Lock()
	current := m.rooms[r.jid.String()] == r
	m.mu.Unlock()
	if !current {
		// Destroyed (destroy deleted the record), or an empty temporary
		// room that ended: the address may belong to a new room now.
		return
	}
	r.mu.Lock()
	keep := r.cfg.Persistent && !r.gone
	st := storedRoom{Config: r.cfg, Affiliations: map[string]string{}, Subject: r.subject, Secret: r.secret, Created: r.created}
	for k, v := range r.affiliations {
		st.Affiliations[k] = v
	}
	if len(r.nicks) > 0 {
		st.Nicks = make(map[string]string, len(r.nicks))
		for k, v := range r.nicks {
			st.Nicks[k] = v
		}
	}
	if !r.subjectFrom.IsZero() {
		st.SubjectFrom = r.subjectFrom.String()
	}
	if r.directory != nil {
		st.Directory = []string{}
		for d := range r.directory {
			st.Directory = append(st.Directory, d)
		}
	}
	r.mu.Unlock()
	name := r.jid.String()
	var err error
	if keep {
		var plain, sealed []byte
		if plain, err = json.Marshal(st); err == nil {
			if sealed, err = m.sealer.Seal(name, []byte(name), plain); err == nil {
				err = m.store.PutMUCRoom(ctx, storage.MUCRoom{JID: name, Service: m.service.String(), State: sealed})
			}
		}
	} else {
		err = m.store.DeleteMUCRoom(ctx, name)
	}
	if err != nil {
		m.log.ErrorContext(ctx, "room state not stored", "room", name, "err", err)
	}
}
