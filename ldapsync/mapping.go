package ldapsync

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/stanza"
)

// Active Directory's userAccountControl and
// msDS-User-Account-Control-Computed bits that keep a user out.
const (
	uacAccountDisable  = 0x2
	uacLockout         = 0x10
	uacPasswordExpired = 0x800000
)

// accountExpiresNever are the two values of accountExpires that mean
// "never" (0 and the largest int64).
const accountExpiresNever = 1<<63 - 1

// maxPhotoBytes bounds the photo put into a vCard: vcard's default
// max_bytes is 128 KiB and base64 makes 96 KiB of photo 128 KiB. Active
// Directory's thumbnailPhoto is at most 100 KB; larger photos are left
// out (logged), not cut.
const maxPhotoBytes = 90 << 10

// attrs are the mapped attributes of a user as the sync last applied them;
// stored (JSON) in the link, so a later sync sees what changed and a
// snapshot can be built without reading the directory.
type attrs struct {
	Username    string         `json:"username"`
	DisplayName string         `json:"display_name,omitempty"`
	Email       string         `json:"email,omitempty"`
	Department  string         `json:"department,omitempty"`
	Company     string         `json:"company,omitempty"`
	Phone       string         `json:"phone,omitempty"`
	Kind        directory.Kind `json:"kind"`
	PhotoHash   string         `json:"photo_sha256,omitempty"`
	Sponsors    []string       `json:"sponsors,omitempty"` // DNs
	// Disabled is why the directory keeps the user out ("" if it does
	// not): disabled, locked out, expired, or matching disabled_filter.
	Disabled string    `json:"disabled,omitempty"`
	Expires  time.Time `json:"expires,omitzero"` // accountExpires; zero: never
	// PrimaryGroup is Active Directory's primaryGroupID: that group's
	// membership is not in its member attribute.
	PrimaryGroup uint32 `json:"primary_group,omitempty"`
	// PasswordStamp is when the directory last changed the password, as
	// the directory wrote it (Active Directory's pwdLastSet, OpenLDAP
	// ppolicy's pwdChangedTime; "" when the directory does not say). A
	// change revokes the account's FAST tokens (XEP-0484): they stand in
	// for the password, which Kontor never sees for directory accounts.
	PasswordStamp string `json:"password_stamp,omitempty"`
	// PasswordTracked is set by every sync that reads PasswordStamp: a
	// link written before Kontor tracked password changes lacks it, and
	// its first stamp is recorded, not taken for a change.
	PasswordTracked bool `json:"password_tracked,omitempty"`
}

func decodeAttrs(b []byte) attrs {
	var a attrs
	if len(b) > 0 {
		_ = json.Unmarshal(b, &a) // unreadable attributes read as empty: the next sync rewrites them
	}
	return a
}

func (a attrs) encode() []byte {
	b, err := json.Marshal(a)
	if err != nil {
		panic("ldapsync: attrs do not encode: " + err.Error()) // plain strings and times always do
	}
	return b
}

// vcardFields reports whether the fields shown in the vCard differ.
func (a attrs) vcardFields() string {
	return strings.Join([]string{a.DisplayName, a.Email, a.Department, a.Company, a.Phone, a.PhotoHash}, "\x00")
}

// diff lists the fields that changed from a to b, for the plan.
func (a attrs) diff(b attrs) []string {
	var out []string
	str := func(name, x, y string) {
		if x != y {
			out = append(out, fmt.Sprintf("%s %q → %q", name, x, y))
		}
	}
	str("username", a.Username, b.Username)
	str("display name", a.DisplayName, b.DisplayName)
	str("email", a.Email, b.Email)
	str("department", a.Department, b.Department)
	str("company", a.Company, b.Company)
	str("phone", a.Phone, b.Phone)
	str("kind", string(a.Kind), string(b.Kind))
	if a.PhotoHash != b.PhotoHash {
		switch {
		case b.PhotoHash == "":
			out = append(out, "photo removed")
		case a.PhotoHash == "":
			out = append(out, "photo added")
		default:
			out = append(out, "photo changed")
		}
	}
	if !slices.Equal(a.Sponsors, b.Sponsors) {
		out = append(out, fmt.Sprintf("sponsors %v → %v", a.Sponsors, b.Sponsors))
	}
	if !a.Expires.Equal(b.Expires) {
		out = append(out, fmt.Sprintf("expires %s → %s", fmtTime(a.Expires), fmtTime(b.Expires)))
	}
	if a.PrimaryGroup != b.PrimaryGroup {
		out = append(out, fmt.Sprintf("primary group %d → %d", a.PrimaryGroup, b.PrimaryGroup))
	}
	switch {
	case a.passwordChanged(b):
		out = append(out, "password changed: FAST tokens revoked")
	case !a.PasswordTracked && b.PasswordTracked:
		out = append(out, "password changes tracked from now on")
	}
	return out
}

// passwordChanged reports whether the directory changed the password
// between a and b: the stamp differs, including one that appears (an
// OpenLDAP entry loaded without ppolicy gets pwdChangedTime at its first
// password change) or goes (pwdLastSet reset to 0: must change at next
// logon). A link from before tracking (an upgrade) has no change.
func (a attrs) passwordChanged(b attrs) bool {
	return a.PasswordTracked && a.PasswordStamp != b.PasswordStamp
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// userEntry is one user read from the directory and mapped.
type userEntry struct {
	StableID string
	DN       string
	DNKey    string
	JID      string
	Attrs    attrs
	// Photo is the photo's bytes, nil when there is none or when it was
	// not kept (see Syncer's photo budget); PhotoHash says which.
	Photo []byte
	// PhotoNote says why a photo was left out, for the plan.
	PhotoNote string
}

// mapper turns directory entries into users and groups per the resolved
// configuration.
type mapper struct {
	cfg    Config // resolved
	domain string
	ad     bool
}

func newMapper(cfg Config, domain string) *mapper {
	return &mapper{cfg: cfg, domain: domain, ad: cfg.Flavor != OpenLDAP}
}

// userAttributes are the attributes a user search asks for.
func (m *mapper) userAttributes() []string {
	u := m.cfg.Users
	list := []string{u.IDAttribute, u.UsernameAttribute, u.DisplayNameAttribute, "cn", u.EmailAttribute,
		u.DepartmentAttribute, u.CompanyAttribute, u.PhoneAttribute, u.PhotoAttribute}
	for _, a := range []string{u.SponsorAttribute, u.KindAttribute} {
		if a != "" {
			list = append(list, a)
		}
	}
	if m.ad {
		list = append(list, "userAccountControl", "msDS-User-Account-Control-Computed", "accountExpires",
			"primaryGroupID", "uSNChanged", "pwdLastSet")
	} else {
		list = append(list, "entryCSN", "modifyTimestamp", "pwdChangedTime")
	}
	return dedupFold(list)
}

// groupAttributes are the attributes a group search asks for.
func (m *mapper) groupAttributes() []string {
	g := m.cfg.Groups
	list := []string{m.cfg.Users.IDAttribute, g.NameAttribute, g.MemberAttribute}
	if m.ad {
		list = append(list, "objectSid", "uSNChanged")
	} else {
		list = append(list, "entryCSN", "modifyTimestamp")
	}
	return dedupFold(list)
}

func dedupFold(list []string) []string {
	var out []string
	for _, a := range list {
		if !slices.ContainsFunc(out, func(b string) bool { return strings.EqualFold(a, b) }) {
			out = append(out, a)
		}
	}
	return out
}

// stableID reads the stable id of an entry: objectGUID in canonical form,
// anything else (entryUUID) as text in lower case.
func (m *mapper) stableID(e *ldap.Entry) (string, error) {
	attr := m.cfg.Users.IDAttribute
	if strings.EqualFold(attr, "objectGUID") {
		raw := e.GetEqualFoldRawAttributeValue(attr)
		g, err := GUIDFromBytes(raw)
		if err != nil {
			return "", fmt.Errorf("objectGUID: %w", err)
		}
		return g.String(), nil
	}
	id := strings.ToLower(strings.TrimSpace(e.GetEqualFoldAttributeValue(attr)))
	if id == "" {
		return "", fmt.Errorf("no %s", attr)
	}
	return id, nil
}

// idFilter returns a filter that finds the entry with a stable id.
func (m *mapper) idFilter(id string) (string, error) {
	attr := m.cfg.Users.IDAttribute
	if strings.EqualFold(attr, "objectGUID") {
		g, err := ParseGUID(id)
		if err != nil {
			return "", err
		}
		return "(objectGUID=" + g.FilterValue() + ")", nil
	}
	return "(" + attr + "=" + ldap.EscapeFilter(id) + ")", nil
}

// usernameOf derives the JID localpart from the username attribute's
// value: the part before the '@' for userPrincipalName and mail.
func usernameOf(attr, value string) (string, error) {
	v := strings.TrimSpace(value)
	if strings.EqualFold(attr, "userPrincipalName") || strings.EqualFold(attr, "mail") || strings.Contains(v, "@") {
		i := strings.LastIndexByte(v, '@')
		if i >= 0 {
			v = v[:i]
		}
	}
	if v == "" {
		return "", fmt.Errorf("empty %s", attr)
	}
	return v, nil
}

// mapUser maps a user entry. now decides whether accountExpires has passed.
func (m *mapper) mapUser(e *ldap.Entry, now time.Time) (userEntry, error) {
	u := m.cfg.Users
	ue := userEntry{DN: e.DN}
	var err error
	if ue.DNKey, err = dnKey(e.DN); err != nil {
		return ue, err
	}
	if ue.StableID, err = m.stableID(e); err != nil {
		return ue, fmt.Errorf("ldapsync: %s: %w", e.DN, err)
	}
	raw := e.GetEqualFoldAttributeValue(u.UsernameAttribute)
	local, err := usernameOf(u.UsernameAttribute, raw)
	if err != nil {
		return ue, fmt.Errorf("ldapsync: %s: %w", e.DN, err)
	}
	j, err := jid.New(local, m.domain, "")
	if err != nil {
		return ue, fmt.Errorf("ldapsync: %s: username %q is not a valid JID localpart: %w", e.DN, local, err)
	}
	ue.JID = j.String()
	// LDAP strings are UTF-8 (RFC 4517), but a directory can hold anything:
	// invalid bytes become U+FFFD here, once, so that what is stored (JSON)
	// reads back the same and the next sync sees no change.
	text := func(attr string) string { return strings.ToValidUTF8(e.GetEqualFoldAttributeValue(attr), "\uFFFD") }
	a := attrs{
		Username:    strings.ToValidUTF8(raw, "\uFFFD"),
		DisplayName: firstNonEmpty(text(u.DisplayNameAttribute), text("cn")),
		Email:       text(u.EmailAttribute),
		Department:  text(u.DepartmentAttribute),
		Company:     text(u.CompanyAttribute),
		Phone:       text(u.PhoneAttribute),
		Kind:        directory.Employee,
	}
	if a.DisplayName == "" {
		a.DisplayName = a.Username
	}
	if u.KindAttribute != "" {
		for _, v := range e.GetEqualFoldAttributeValues(u.KindAttribute) {
			switch {
			case containsFold(u.GuestValues, v):
				a.Kind = directory.Guest
			case containsFold(u.ExternalValues, v) && a.Kind != directory.Guest:
				a.Kind = directory.External
			}
		}
	}
	if u.SponsorAttribute != "" {
		for _, s := range e.GetEqualFoldAttributeValues(u.SponsorAttribute) {
			a.Sponsors = append(a.Sponsors, strings.ToValidUTF8(s, "\uFFFD"))
		}
		slices.Sort(a.Sponsors)
	}
	if photo := e.GetEqualFoldRawAttributeValue(u.PhotoAttribute); len(photo) > 0 {
		if len(photo) > maxPhotoBytes {
			ue.PhotoNote = fmt.Sprintf("photo of %d bytes left out (more than %d)", len(photo), maxPhotoBytes)
		} else {
			sum := sha256.Sum256(photo)
			a.PhotoHash = hex.EncodeToString(sum[:])
			ue.Photo = photo
		}
	}
	if m.ad {
		uac, _ := strconv.ParseInt(e.GetEqualFoldAttributeValue("userAccountControl"), 10, 64)
		computed, _ := strconv.ParseInt(e.GetEqualFoldAttributeValue("msDS-User-Account-Control-Computed"), 10, 64)
		if exp, err := strconv.ParseInt(e.GetEqualFoldAttributeValue("accountExpires"), 10, 64); err == nil {
			a.Expires = fileTime(exp)
		}
		pg, _ := strconv.ParseUint(e.GetEqualFoldAttributeValue("primaryGroupID"), 10, 32)
		a.PrimaryGroup = uint32(pg)
		a.Disabled = adDisabled(uac, computed, a.Expires, now)
		a.PasswordStamp = text("pwdLastSet")
	} else {
		a.PasswordStamp = text("pwdChangedTime")
	}
	a.PasswordTracked = true
	ue.Attrs = a
	return ue, nil
}

// adDisabled says why an Active Directory account is kept out, or "".
// An expired password alone does not: the user can still change it.
func adDisabled(uac, computed int64, expires, now time.Time) string {
	switch {
	case uac&uacAccountDisable != 0:
		return "disabled in the directory"
	case computed&uacLockout != 0 || uac&uacLockout != 0:
		return "locked out"
	case !expires.IsZero() && !now.Before(expires):
		return "account expired"
	}
	return ""
}

// fileTime converts a Windows FILETIME (100 ns since 1601, as in
// accountExpires) to a time; 0, the largest value and anything after the
// year 9999 (which no tool of Active Directory sets, and which neither
// JSON nor SQL timestamps can hold) mean never (zero time).
func fileTime(v int64) time.Time {
	if v <= 0 || v == accountExpiresNever {
		return time.Time{}
	}
	const epochDiff = 116444736000000000 // 1601-01-01 to 1970-01-01 in 100 ns
	if v < epochDiff {
		return time.Unix(0, 0).UTC() // before 1970: long expired
	}
	d := v - epochDiff
	t := time.Unix(d/1e7, (d%1e7)*100).UTC()
	if t.Year() > 9999 {
		return time.Time{}
	}
	return t
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func containsFold(list []string, v string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.EqualFold(s, v) })
}

// group is one directory group.
type group struct {
	StableID string
	DN       string
	DNKey    string
	Name     string
	Members  []string // member DNs
	RID      uint32   // relative id from objectSid (AD), 0 if unknown
}

type groupAttrs struct {
	RID uint32 `json:"rid,omitempty"`
}

// mapGroup maps a group entry; members that came in ranges are completed
// by the caller (see rangedMembers).
func (m *mapper) mapGroup(e *ldap.Entry) (group, valueRange, bool, error) {
	g := group{DN: e.DN}
	var err error
	if g.DNKey, err = dnKey(e.DN); err != nil {
		return g, valueRange{}, false, err
	}
	if g.StableID, err = m.stableID(e); err != nil {
		return g, valueRange{}, false, fmt.Errorf("ldapsync: group %s: %w", e.DN, err)
	}
	g.Name = firstNonEmpty(e.GetEqualFoldAttributeValue(m.cfg.Groups.NameAttribute), e.DN)
	memberAttr := m.cfg.Groups.MemberAttribute
	var (
		r      valueRange
		ranged bool
	)
	for _, a := range e.Attributes {
		if strings.EqualFold(a.Name, memberAttr) {
			g.Members = append(g.Members, a.Values...)
		} else if rr, ok := parseRange(a.Name, memberAttr); ok {
			g.Members = append(g.Members, a.Values...)
			r, ranged = rr, !rr.last
		}
	}
	if sid := e.GetEqualFoldRawAttributeValue("objectSid"); len(sid) > 0 {
		g.RID, _ = ridOf(sid)
	}
	return g, r, ranged, nil
}

// ridOf returns the last sub-authority of a binary SID (MS-DTYP 2.4.2.2):
// the relative id that primaryGroupID refers to.
func ridOf(sid []byte) (uint32, error) {
	if len(sid) < 8 || sid[0] != 1 {
		return 0, errors.New("not a SID")
	}
	n := int(sid[1])
	if n == 0 || len(sid) != 8+4*n {
		return 0, errors.New("not a SID")
	}
	return binary.LittleEndian.Uint32(sid[len(sid)-4:]), nil
}

// vcard builds the vcard-temp element of a user.
func vcard(j string, a attrs, photo []byte) []byte {
	v := stanza.New("vcard-temp", "vCard")
	text := func(name, s string) *stanza.Element { return stanza.New("vcard-temp", name).AppendText(s) }
	if a.DisplayName != "" {
		v.Append(text("FN", a.DisplayName))
	}
	if a.Email != "" {
		v.Append(stanza.New("vcard-temp", "EMAIL").Append(stanza.New("vcard-temp", "INTERNET"),
			stanza.New("vcard-temp", "PREF"), text("USERID", a.Email)))
	}
	if a.Company != "" || a.Department != "" {
		org := stanza.New("vcard-temp", "ORG")
		org.Append(text("ORGNAME", a.Company))
		if a.Department != "" {
			org.Append(text("ORGUNIT", a.Department))
		}
		v.Append(org)
	}
	if a.Phone != "" {
		v.Append(stanza.New("vcard-temp", "TEL").Append(stanza.New("vcard-temp", "WORK"),
			stanza.New("vcard-temp", "VOICE"), text("NUMBER", a.Phone)))
	}
	v.Append(text("JABBERID", j))
	if len(photo) > 0 {
		v.Append(stanza.New("vcard-temp", "PHOTO").Append(text("TYPE", http.DetectContentType(photo)),
			text("BINVAL", base64.StdEncoding.EncodeToString(photo))))
	}
	return v.AppendXML(nil, "")
}
