package version

import (
	"runtime"
	"slices"
	"strings"
	"testing"

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

func enabled(t *testing.T, opts *Options) router.Enabled {
	t.Helper()
	e := modtest.Module(t, "version")
	if opts != nil {
		o := e.Module.(module.Configurable).Options().(*Options)
		*o = *opts
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func TestQuery(t *testing.T) {
	tests := []struct {
		name     string
		opts     *Options
		to       string
		wantCond string
		want     string
	}{
		{"defaults", nil, "example.com", "", "<query xmlns='jabber:iq:version'><name>Kontor</name><version>dev</version></query>"},
		{"configured version", &Options{Version: "1.4.2"}, "example.com", "", "<query xmlns='jabber:iq:version'><name>Kontor</name><version>1.4.2</version></query>"},
		{"with os", &Options{Version: "1.4.2", ShowOS: true}, "example.com", "",
			"<query xmlns='jabber:iq:version'><name>Kontor</name><version>1.4.2</version><os>" + runtime.GOOS + " " + runtime.GOARCH + "</os></query>"},
		{"to an account", nil, "alice@example.com", stanza.ServiceUnavailable, ""},
		{"to the own account", nil, "", stanza.ServiceUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := modtest.New(t, modtest.Options{}, enabled(t, tt.opts))
			srv.Account("alice")
			a := srv.Connect("alice@example.com/phone")
			to := ""
			if tt.to != "" {
				to = " to='" + tt.to + "'"
			}
			a.SendXML("<iq type='get' id='v'" + to + "><query xmlns='jabber:iq:version'/></iq>")
			r := a.NextIQ("v")
			if got := modtest.ErrorCondition(r); got != tt.wantCond {
				t.Fatalf("condition %q, want %q: %s", got, tt.wantCond, r.El)
			}
			if tt.want != "" {
				if got := r.Payload().String(); got != tt.want {
					t.Errorf("payload %s, want %s", got, tt.want)
				}
				if r.From.String() != "example.com" {
					t.Errorf("from %q", r.From)
				}
			}
		})
	}
}

func TestSetIsUnavailable(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, enabled(t, nil))
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	a.SendXML("<iq type='set' id='v' to='example.com'><query xmlns='jabber:iq:version'/></iq>")
	if got := modtest.ErrorCondition(a.NextIQ("v")); got != stanza.ServiceUnavailable {
		t.Errorf("condition %q", got)
	}
}

func TestDiscoFeature(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, enabled(t, nil))
	if f := srv.Host.DiscoInfo(module.ToHost).Features; !slices.Equal(f, []string{NS}) {
		t.Errorf("host features = %q", f)
	}
	if f := srv.Host.DiscoInfo(module.ToAccount).Features; len(f) != 0 {
		t.Errorf("account features = %q, want none", f)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		version string
		wantErr string
	}{
		{"release", "v1.2.3", ""},
		{"pseudo-version", "v0.0.0-20260101120000-abcdef012345", ""},
		{"empty", "", "1 to 64 bytes"},
		{"too long", strings.Repeat("1", 65), "1 to 64 bytes"},
		{"newline", "1.0\nos: linux", "control characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Options{Version: tt.version}).Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "version: ") {
				t.Errorf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestBuildVersion(t *testing.T) {
	// A test binary has no module version.
	if got := buildVersion(); got != "dev" {
		t.Errorf("buildVersion() = %q, want dev", got)
	}
	if o := modtest.Module(t, "version").Module.(module.Configurable).Options().(*Options); o.Version != "dev" || o.ShowOS {
		t.Errorf("default options %+v", o)
	}
}
