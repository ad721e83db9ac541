package muc

import (
	"context"
	"fmt"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/jid"
)

// DirectoryRoom maps a directory group to a room whose member list follows
// the group.
type DirectoryRoom struct {
	// Group is the group's stable id or its name.
	Group string `mapstructure:"group"`
	// Room is the room's local part ("sales" for sales@conference.DOMAIN).
	Room string `mapstructure:"room"`
	// Name is the room's display name ("" for the group's name).
	Name string `mapstructure:"name"`
}

func (o *Options) validateDirectoryRooms() error {
	seen := map[string]bool{}
	for i, d := range o.DirectoryRooms {
		if d.Group == "" {
			return fmt.Errorf("muc: directory_rooms[%d]: group is empty", i)
		}
		if _, err := jid.New(d.Room, "conference.invalid", ""); err != nil || d.Room == "" {
			return fmt.Errorf("muc: directory_rooms[%d]: room %q is not a valid local part", i, d.Room)
		}
		if seen[d.Room] {
			return fmt.Errorf("muc: directory_rooms[%d]: room %q is mapped twice", i, d.Room)
		}
		seen[d.Room] = true
	}
	return nil
}

// directoryRooms creates the configured directory rooms: persistent,
// members-only and not listed publicly, with no members until the first
// directory snapshot.
func (m *Module) directoryRooms() {
	for _, d := range m.opts.DirectoryRooms {
		bare, _ := jid.New(d.Room, m.service.Domain(), "")
		r, _, err := m.room(bare)
		if err != nil {
			m.log.Error("directory room not created", "room", bare.String(), "err", err)
			continue
		}
		r.mu.Lock()
		r.cfg.Persistent, r.cfg.MembersOnly, r.cfg.Public = true, true, false
		r.locked = false
		r.cfg.Name = d.Name
		if r.directory == nil {
			r.directory = map[string]bool{}
		}
		r.mu.Unlock()
		m.persist(context.Background(), r)
	}
}

// UpdateDirectory implements directory.Sink: each directory room's member
// list becomes its group's members (nesting resolved). Members the
// directory added and the group no longer has lose their membership, and
// leave the room if they are in it (status 321); affiliations given by
// hand (owner, admin, outcast) are left alone. A group the snapshot does
// not have empties its room's directory members.
func (m *Module) UpdateDirectory(ctx context.Context, snap directory.Snapshot) error {
	for _, d := range m.opts.DirectoryRooms {
		var group *directory.Group
		for id, g := range snap.Groups {
			if id == d.Group || g.Name == d.Group {
				g := g
				group = &g
				break
			}
		}
		want := map[string]bool{}
		if group != nil {
			for _, member := range group.Members {
				if j, err := jid.Parse(member); err == nil {
					want[j.Bare().String()] = true
				}
			}
		} else {
			m.log.Warn("directory room's group is not in the directory", "group", d.Group, "room", d.Room)
		}
		bare, _ := jid.New(d.Room, m.service.Domain(), "")
		r := m.lookup(bare)
		if r == nil {
			continue
		}
		r.mu.Lock()
		if r.cfg.Name == "" && group != nil {
			r.cfg.Name = group.Name
		}
		var out []outgoing
		for member := range r.directory {
			if want[member] {
				continue
			}
			delete(r.directory, member)
			if r.affiliations[member] != Member {
				continue // changed by hand since
			}
			delete(r.affiliations, member)
			delete(r.nicks, member)
			for _, o := range r.occupants {
				if o.real.Bare().String() == member {
					out = append(out, r.removeLocked(o, []string{"321"}, "no longer in the directory group")...)
				}
			}
		}
		for member := range want {
			if _, has := r.affiliations[member]; has {
				continue // an owner, admin or outcast keeps that
			}
			r.affiliations[member] = Member
			r.directory[member] = true
			for _, o := range r.occupants {
				if o.real.Bare().String() == member {
					o.affiliation, o.role = Member, r.roleFor(Member)
					out = append(out, r.broadcastPresence(o, "", nil, nil)...)
				}
			}
		}
		r.mu.Unlock()
		for _, s := range out {
			m.host.Route(ctx, s)
		}
		m.persist(ctx, r)
	}
	return nil
}

var _ directory.Sink = (*Module)(nil)
