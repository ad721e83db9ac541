package ldapsync

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// serverInfo is what the root DSE (and, on OpenLDAP, the naming context)
// tell about the server, read before the searches so that the marks taken
// from it never skip a change made during the sync.
type serverInfo struct {
	// identity names the server whose change numbers these are: the
	// domain controller's dsServiceName on Active Directory.
	identity string
	usn      uint64 // highestCommittedUSN (Active Directory)
	csn      string // the newest contextCSN of the naming context (OpenLDAP)
}

func (s *Syncer) serverInfo(ctx context.Context) (serverInfo, error) {
	var info serverInfo
	root, err := s.client.rootDSE(ctx)
	if err != nil {
		return info, err
	}
	if s.mapper.ad {
		info.identity = root.GetAttributeValue("dsServiceName")
		info.usn, err = strconv.ParseUint(root.GetAttributeValue("highestCommittedUSN"), 10, 64)
		if err != nil || info.identity == "" {
			return info, fmt.Errorf("ldapsync: the server does not look like Active Directory (no highestCommittedUSN or "+
				"dsServiceName in its root DSE); set ldap.flavor to %s for other directories", OpenLDAP)
		}
		return info, nil
	}
	// OpenLDAP: the contextCSN of the naming context that holds the users
	// (kept by the syncprov overlay). Several values (one per provider in
	// multi-provider replication) are compared as text, which orders
	// CSNs by time.
	base, err := ldap.ParseDN(s.cfg.Users.BaseDN)
	if err != nil {
		return info, fmt.Errorf("ldapsync: users.base_dn: %w", err)
	}
	for _, nc := range root.GetAttributeValues("namingContexts") {
		ncDN, err := ldap.ParseDN(nc)
		if err != nil || !(ncDN.EqualFold(base) || ncDN.AncestorOfFold(base)) {
			continue
		}
		e, err := s.client.searchBase(ctx, nc, []string{"contextCSN"}, nil)
		if err != nil {
			s.log.Debug("reading contextCSN failed; incremental sync uses modifyTimestamp", "err", err)
			break
		}
		if e != nil {
			for _, v := range e.GetAttributeValues("contextCSN") {
				info.csn = max(info.csn, v)
			}
		}
		info.identity = nc
		break
	}
	return info, nil
}

// readResult is what one sync read from the directory.
type readResult struct {
	users map[string]*userEntry // by stable id
	// present holds the stable id of every user in the directory (full
	// sync, or OpenLDAP's id scan); nil when not known.
	present       map[string]bool
	groups        map[string]*group
	presentGroups map[string]bool // like present, for groups
	errors        []EntryError
	marks         map[string]string // to store once applied
	read          int
	photoBytes    int
}

// photoBudget bounds the photo bytes one sync keeps in memory; beyond it,
// photos are fetched again one by one when their vCard is written.
const photoBudget = 32 << 20

// read reads users and groups, all of them (full) or the changed ones.
func (s *Syncer) read(ctx context.Context, st *syncState, info serverInfo, mode Mode, progress func(Progress)) (*readResult, error) {
	rd := &readResult{users: map[string]*userEntry{}, groups: map[string]*group{}, marks: map[string]string{}}
	u, g := s.cfg.Users, s.cfg.Groups
	userFilter, groupFilter := u.Filter, g.Filter
	incremental := mode == Incremental
	if incremental {
		var changed string
		switch {
		case s.mapper.ad:
			changed = fmt.Sprintf("(uSNChanged>=%d)", mustUint(st.marks[markUSN])+1)
		case st.marks[markCSN] != "":
			changed = "(!(entryCSN<=" + ldap.EscapeFilter(st.marks[markCSN]) + "))"
		default:
			changed = "(modifyTimestamp>=" + ldap.EscapeFilter(st.marks[markTimestamp]) + ")"
		}
		userFilter = "(&" + userFilter + changed + ")"
		groupFilter = "(&" + groupFilter + changed + ")"
	} else {
		rd.present, rd.presentGroups = map[string]bool{}, map[string]bool{}
	}

	// Marks first: a change made while the sync reads is then read again
	// by the next sync, never skipped.
	if s.mapper.ad {
		rd.marks[markServer] = info.identity
		rd.marks[markUSN] = strconv.FormatUint(info.usn, 10)
	} else {
		rd.marks[markServer] = info.identity
		rd.marks[markCSN] = info.csn
	}
	maxTimestamp := ""

	total := len(st.links)
	if incremental {
		total = -1
	}
	err := s.client.searchPaged(ctx, u.BaseDN, userFilter, s.mapper.userAttributes(), nil, s.cfg.PageSize, func(p page) error {
		now := s.now()
		for _, e := range p.entries {
			rd.read++
			if ts := e.GetAttributeValue("modifyTimestamp"); ts > maxTimestamp {
				maxTimestamp = ts
			}
			ue, err := s.mapper.mapUser(e, now)
			if err != nil {
				rd.errors = append(rd.errors, EntryError{DN: e.DN, Err: err})
				if ue.StableID != "" && rd.present != nil {
					rd.present[ue.StableID] = true // in the directory, if unusable: not gone
				}
				continue
			}
			if ue.PhotoNote != "" {
				s.log.Info("photo left out", "dn", e.DN, "why", ue.PhotoNote)
			}
			if old, ok := st.attrs[ue.StableID]; ok && old.PhotoHash == ue.Attrs.PhotoHash {
				ue.Photo = nil // unchanged: not needed
			} else if len(ue.Photo) > 0 {
				if rd.photoBytes+len(ue.Photo) > photoBudget {
					ue.Photo = nil // fetched again when its vCard is written
				} else {
					rd.photoBytes += len(ue.Photo)
				}
			}
			if rd.present != nil {
				rd.present[ue.StableID] = true
			}
			rd.users[ue.StableID] = &ue
		}
		progress(Progress{Phase: "users", Done: rd.read, Total: total})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ldapsync: searching users under %s: %w", u.BaseDN, err)
	}

	if !s.mapper.ad && u.DisabledFilter != "" {
		// Entries matching disabled_filter (checked by the server, with its
		// matching rules) among those read.
		disabled, err := s.scanIDs(ctx, u.BaseDN, "(&"+userFilter+u.DisabledFilter+")")
		if err != nil {
			return nil, fmt.Errorf("ldapsync: searching disabled users: %w", err)
		}
		for id := range disabled {
			if ue, ok := rd.users[id]; ok {
				ue.Attrs.Disabled = "matches disabled_filter"
			}
		}
	}

	gread := 0
	var ranged []*group
	ranges := map[*group]valueRange{}
	err = s.client.searchPaged(ctx, g.BaseDN, groupFilter, s.mapper.groupAttributes(), nil, s.cfg.PageSize, func(p page) error {
		for _, e := range p.entries {
			gread++
			if ts := e.GetAttributeValue("modifyTimestamp"); ts > maxTimestamp {
				maxTimestamp = ts
			}
			gr, r, more, err := s.mapper.mapGroup(e)
			if err != nil {
				rd.errors = append(rd.errors, EntryError{DN: e.DN, Err: err})
				if gr.StableID != "" && rd.presentGroups != nil {
					rd.presentGroups[gr.StableID] = true
				}
				continue
			}
			if more {
				ranged = append(ranged, &gr)
				ranges[&gr] = r
			}
			rd.groups[gr.StableID] = &gr
			if rd.presentGroups != nil {
				rd.presentGroups[gr.StableID] = true
			}
		}
		progress(Progress{Phase: "groups", Done: gread, Total: -1})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ldapsync: searching groups under %s: %w", g.BaseDN, err)
	}
	for _, gr := range ranged {
		// Active Directory returns at most 1500 values of an attribute
		// (MaxValRange); the rest comes range by range.
		members, err := s.client.rangedValues(ctx, gr.DN, g.MemberAttribute, gr.Members, ranges[gr])
		if err != nil {
			rd.errors = append(rd.errors, EntryError{DN: gr.DN, Err: err})
			// Keep the stored members rather than a truncated list.
			if old, ok := st.groups[gr.StableID]; ok {
				gr.Members = old.Members
			}
			continue
		}
		gr.Members = members
	}

	if incremental {
		// What is gone: the stable ids of everything there (one attribute
		// per entry). OpenLDAP keeps no tombstones; Active Directory's are
		// readable only with rights beyond a reader's on CN=Deleted
		// Objects, expire after the tombstone lifetime, and miss entries
		// moved out of the base DN or the filter, which the scan sees.
		if rd.present, err = s.scanIDs(ctx, u.BaseDN, u.Filter); err != nil {
			return nil, fmt.Errorf("ldapsync: listing user ids: %w", err)
		}
		if rd.presentGroups, err = s.scanIDs(ctx, g.BaseDN, g.Filter); err != nil {
			return nil, fmt.Errorf("ldapsync: listing group ids: %w", err)
		}
	}
	if !s.mapper.ad && rd.marks[markCSN] == "" {
		// No contextCSN: fall back to the newest modifyTimestamp seen
		// (whole seconds; the next sync reads that second again).
		rd.marks[markCSN] = ""
		rd.marks[markTimestamp] = max(maxTimestamp, st.marks[markTimestamp])
	}
	return rd, nil
}

// scanIDs returns the stable ids of the entries matching filter.
func (s *Syncer) scanIDs(ctx context.Context, base, filter string) (map[string]bool, error) {
	ids := map[string]bool{}
	err := s.client.searchPaged(ctx, base, filter, []string{s.cfg.Users.IDAttribute}, nil, s.cfg.PageSize, func(p page) error {
		for _, e := range p.entries {
			if id, err := s.mapper.stableID(e); err == nil {
				ids[id] = true
			}
		}
		return nil
	})
	return ids, err
}

// fetchPhoto reads a user's photo again (it was not kept in memory).
func (s *Syncer) fetchPhoto(ctx context.Context, stableID string) ([]byte, error) {
	filter, err := s.mapper.idFilter(stableID)
	if err != nil {
		return nil, err
	}
	var photo []byte
	err = s.client.searchPaged(ctx, s.cfg.Users.BaseDN, filter, []string{s.cfg.Users.PhotoAttribute}, nil, 1, func(p page) error {
		for _, e := range p.entries {
			photo = e.GetEqualFoldRawAttributeValue(s.cfg.Users.PhotoAttribute)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ldapsync: fetching the photo of %s: %w", stableID, err)
	}
	if len(photo) > maxPhotoBytes {
		return nil, nil
	}
	return photo, nil
}

// findDN finds the current DN of the user with a stable id ("" if none).
func (s *Syncer) findDN(ctx context.Context, stableID string) (string, error) {
	return findDN(ctx, s.client, s.mapper, s.cfg.Users, stableID)
}

func findDN(ctx context.Context, c *Client, m *mapper, u UsersConfig, stableID string) (string, error) {
	filter, err := m.idFilter(stableID)
	if err != nil {
		return "", err
	}
	var dns []string
	err = c.searchPaged(ctx, u.BaseDN, "(&"+u.Filter+filter+")", []string{"1.1"}, nil, 2, func(p page) error {
		for _, e := range p.entries {
			dns = append(dns, e.DN)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.Sort(dns)
	if len(dns) != 1 {
		return "", nil
	}
	return dns[0], nil
}

func mustUint(s string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	return n
}
