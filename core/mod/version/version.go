// Package version implements XEP-0092 Software Version for the server: a
// jabber:iq:version query to the domain is answered with the name "Kontor"
// and the configured version.
//
// The operating system is not disclosed unless show_os is set: knowing the
// OS (and with it often the patch level) of a server helps an attacker pick
// an exploit, and XEP-0092 §5 requires that an administrator can turn it
// off. Kontor makes disclosure the opt-in, and the default version carries
// no more than the release (the module version from the build info, or
// "dev" for a build from a work tree).
//
// Queries to accounts and clients are not answered here: a query to a full
// JID is delivered to that client, one to a bare JID gets
// service-unavailable like any IQ no module handles.
package version

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"strings"
	"unicode"

	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/stanza"
)

// NS is the software version namespace.
const NS = "jabber:iq:version"

// Name is the software name reported.
const Name = "Kontor"

func init() {
	module.Register(module.Info{
		ID:          "version",
		Description: "Tells the server's software name and version",
		Specs: []module.Spec{
			{ID: "XEP-0092", Name: "Software Version", Version: "1.1", Status: module.Complete},
		},
		Default: true,
		New:     func() module.Module { return &version{opts: Options{Version: buildVersion()}} },
	})
}

// Options configures the version module.
type Options struct {
	// Version is the version reported; by default the version of the main
	// module from the build info, or "dev".
	Version string `mapstructure:"version"`
	// ShowOS discloses the operating system and architecture. Off by
	// default: see the package documentation.
	ShowOS bool `mapstructure:"show_os"`
}

const maxVersionSize = 64

// Validate checks the version string.
func (o *Options) Validate() error {
	if o.Version == "" || len(o.Version) > maxVersionSize {
		return errors.New("version: version must have 1 to 64 bytes")
	}
	if strings.IndexFunc(o.Version, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0 {
		return errors.New("version: version contains control characters")
	}
	return nil
}

// buildVersion is the main module's version, or "dev" when there is none
// (go run, go test, a build from a work tree without VCS stamping).
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
	}
	return "dev"
}

type version struct {
	opts Options
}

var (
	_ module.Configurable = (*version)(nil)
	_ module.Validator    = (*Options)(nil)
)

func (v *version) Options() any { return &v.opts }

func (v *version) Provision(h module.Host) error {
	h.HandleIQ(module.ToHost, module.Get, stanza.Name{Space: NS, Local: "query"}, v.query)
	h.AddDisco(module.ToHost, module.Disco{Features: []string{NS}})
	return nil
}

func (v *version) query(ctx context.Context, iq *module.IQ) (*stanza.Element, error) {
	q := stanza.New(NS, "query").Append(
		stanza.New(NS, "name").AppendText(Name),
		stanza.New(NS, "version").AppendText(v.opts.Version),
	)
	if v.opts.ShowOS {
		q.Append(stanza.New(NS, "os").AppendText(runtime.GOOS + " " + runtime.GOARCH))
	}
	return q, nil
}
