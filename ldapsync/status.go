package ldapsync

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Status is what the stored sync state says, without the directory.
type Status struct {
	Accounts int // linked accounts in the directory
	Disabled int // of which the sync disabled
	Gone     int // linked accounts whose entries are gone (retired)
	Groups   int
	LastFull time.Time // zero: never
	// Marks are the high-water marks as stored (usn, csn, server, ...).
	Marks map[string]string
}

// Status reads the stored state.
func (s *Syncer) Status(ctx context.Context) (Status, error) {
	st, err := s.loadState(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("ldapsync: %w", err)
	}
	out := Status{Groups: len(st.groups), Marks: st.marks}
	for _, l := range st.links {
		switch {
		case !l.GoneSince.IsZero():
			out.Gone++
		default:
			out.Accounts++
			if l.Disabled {
				out.Disabled++
			}
		}
	}
	out.LastFull, _ = time.Parse(time.RFC3339Nano, st.marks[markLastFull])
	return out, nil
}

// CheckResult is what Check found.
type CheckResult struct {
	// Vendor is the root DSE's vendorName and vendorVersion, if given.
	Vendor string
	// ActiveDirectory reports the Active Directory capability
	// (1.2.840.113556.1.4.800) in the root DSE.
	ActiveDirectory bool
	Identity        string // dsServiceName, or the naming context
	Users, Groups   int    // entries matching the filters
	Disabled        int    // OpenLDAP: users matching disabled_filter
	Mark            string // the change mark incremental sync would use
}

// adCapability is LDAP_CAP_ACTIVE_DIRECTORY_OID.
const adCapability = "1.2.840.113556.1.4.800"

// Check connects as the service account and counts what the filters
// select, changing nothing: for `kontor ldap check`.
func (s *Syncer) Check(ctx context.Context) (CheckResult, error) {
	var r CheckResult
	root, err := s.client.rootDSE(ctx)
	if err != nil {
		return r, err
	}
	r.Vendor = firstNonEmpty(root.GetAttributeValue("vendorName") + " " + root.GetAttributeValue("vendorVersion"))
	r.ActiveDirectory = slices.Contains(root.GetAttributeValues("supportedCapabilities"), adCapability)
	if r.ActiveDirectory != s.mapper.ad {
		return r, fmt.Errorf("ldapsync: ldap.flavor is %s, but the server %s", s.cfg.Flavor,
			map[bool]string{true: "is Active Directory", false: "is not Active Directory"}[r.ActiveDirectory])
	}
	info, err := s.serverInfo(ctx)
	if err != nil {
		return r, err
	}
	r.Identity = info.identity
	if s.mapper.ad {
		r.Mark = fmt.Sprintf("highestCommittedUSN %d", info.usn)
	} else if info.csn != "" {
		r.Mark = "contextCSN " + info.csn
	} else {
		r.Mark = "modifyTimestamp (no contextCSN: add the syncprov overlay for exact incremental syncs)"
	}
	users, err := s.scanIDs(ctx, s.cfg.Users.BaseDN, s.cfg.Users.Filter)
	if err != nil {
		return r, fmt.Errorf("ldapsync: searching users: %w", err)
	}
	groups, err := s.scanIDs(ctx, s.cfg.Groups.BaseDN, s.cfg.Groups.Filter)
	if err != nil {
		return r, fmt.Errorf("ldapsync: searching groups: %w", err)
	}
	r.Users, r.Groups = len(users), len(groups)
	if !s.mapper.ad && s.cfg.Users.DisabledFilter != "" {
		disabled, err := s.scanIDs(ctx, s.cfg.Users.BaseDN, "(&"+s.cfg.Users.Filter+s.cfg.Users.DisabledFilter+")")
		if err != nil {
			return r, fmt.Errorf("ldapsync: searching disabled users: %w", err)
		}
		r.Disabled = len(disabled)
	}
	return r, nil
}
