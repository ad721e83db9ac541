package mam

import (
	"context"
	"slices"
	"strconv"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// maxPrefsJIDs bounds each list of the preferences.
const maxPrefsJIDs = 1000

// getPrefs answers a preferences get (XEP-0441).
func (m *Module) getPrefs(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	owner, err := ownArchive(iq)
	if err != nil {
		return nil, err
	}
	return m.currentPrefs(ctx, owner)
}

// setPrefs stores new preferences and answers with what was stored.
func (m *Module) setPrefs(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	owner, err := ownArchive(iq)
	if err != nil {
		return nil, err
	}
	p, err := parsePrefs(iq.Payload())
	if err != nil {
		return nil, err
	}
	if err := m.archive.SetPrefs(ctx, owner.String(), p); err != nil {
		return nil, internal("set preferences", err)
	}
	return m.currentPrefs(ctx, owner)
}

func (m *Module) currentPrefs(ctx context.Context, owner jid.JID) (*stanza.Element, error) {
	p, err := m.archive.Prefs(ctx, owner.String())
	if err != nil {
		return nil, internal("preferences", err)
	}
	switch p.Default {
	case Always, Never, Roster:
	default:
		p.Default = m.opts.Default
	}
	return prefsElement(p), nil
}

// prefsElement renders preferences; <always/> and <never/> are always
// present, as XEP-0441 requires.
func prefsElement(p module.ArchivePrefs) *stanza.Element {
	el := stanza.New(NS, "prefs").Set("default", p.Default)
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		list := stanza.New(NS, l.name)
		for _, j := range l.jids {
			list.Append(stanza.New(NS, "jid").AppendText(j))
		}
		el.Append(list)
	}
	return el
}

// parsePrefs parses the <prefs/> of a preferences set. The JIDs come out
// canonical and without duplicates, in the order given. A JID may be in
// both lists; never wins. Every error is a stanza.Error.
func parsePrefs(el *stanza.Element) (module.ArchivePrefs, error) {
	var p module.ArchivePrefs
	if el == nil || el.Name != prefsName {
		return p, stanza.ErrBadRequest("expected a prefs element in the " + NS + " namespace")
	}
	switch p.Default = el.Get("default"); p.Default {
	case Always, Never, Roster:
	default:
		return p, stanza.ErrBadRequest("the default must be always, never or roster")
	}
	var seenAlways, seenNever bool
	for _, n := range el.Nodes {
		c := n.Elem
		if c == nil || c.Name.Space != NS {
			continue
		}
		var list *[]string
		switch c.Name.Local {
		case "always":
			if seenAlways {
				return p, stanza.ErrBadRequest("more than one always element")
			}
			seenAlways, list = true, &p.Always
		case "never":
			if seenNever {
				return p, stanza.ErrBadRequest("more than one never element")
			}
			seenNever, list = true, &p.Never
		default:
			continue
		}
		for _, jn := range c.Nodes {
			e := jn.Elem
			if e == nil || e.Name != (stanza.Name{Space: NS, Local: "jid"}) {
				continue
			}
			j, err := jid.Parse(e.Text())
			if err != nil {
				return p, stanza.ErrBadRequest("not a valid JID in the " + c.Name.Local + " list")
			}
			if s := j.String(); !slices.Contains(*list, s) {
				if len(*list) == maxPrefsJIDs {
					return p, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
						Text: "more than " + strconv.Itoa(maxPrefsJIDs) + " JIDs in the " + c.Name.Local + " list"}
				}
				*list = append(*list, s)
			}
		}
	}
	return p, nil
}
