// Package entitytime implements XEP-0202 Entity Time for the server: a
// urn:xmpp:time query to the domain is answered with the current UTC time
// and the offset of the server's local time zone.
//
// The package is named entitytime, after the title of the XEP, rather than
// time: it needs the standard library's time package itself, and a package
// that shadows a standard one makes every file that imports both rename one
// of them. The directory stays core/mod/time, after the module's ID.
//
// Times are formatted as XEP-0082 requires: <utc/> as a dateTime in UTC
// with a 'Z' and whole seconds, <tzo/> as a TZD of the form "+01:00" (UTC
// itself is "+00:00", which XEP-0082 allows as well as "Z" and which more
// clients parse).
package entitytime

import (
	"context"
	"time"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// NS is the entity time namespace.
const NS = "urn:xmpp:time"

func init() {
	module.Register(module.Info{
		ID:          "time",
		Description: "Tells the server's current time and time zone offset",
		Specs: []module.Spec{
			{ID: "XEP-0202", Name: "Entity Time", Version: "2.0", Status: module.Complete},
		},
		Default: true,
		New:     func() module.Module { return &entityTime{now: time.Now, zone: time.Local} },
	})
}

type entityTime struct {
	now  func() time.Time
	zone *time.Location
}

func (e *entityTime) Provision(h module.Host) error {
	h.HandleIQ(module.ToHost, module.Get, stanza.Name{Space: NS, Local: "time"}, e.query)
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	return nil
}

func (e *entityTime) query(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	now := e.now()
	return Element(now, e.zone), nil
}

// Element renders the <time/> payload for the instant t as seen in zone.
func Element(t time.Time, zone *time.Location) *stanza.Element {
	return stanza.New(NS, "time").Append(
		stanza.New(NS, "tzo").AppendText(t.In(zone).Format("-07:00")),
		stanza.New(NS, "utc").AppendText(t.UTC().Format("2006-01-02T15:04:05Z")),
	)
}
