package entitytime

import (
	"regexp"
	"slices"
	"testing"
	"time"
	_ "time/tzdata" // the zone database, so no test depends on the machine's

	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/stanza"
)

func withClock(t *testing.T, now time.Time, zone *time.Location) router.Enabled {
	t.Helper()
	info, ok := module.Lookup("time")
	if !ok {
		t.Fatal("time is not registered")
	}
	return router.Enabled{Info: info, Module: &entityTime{now: func() time.Time { return now }, zone: zone}}
}

func TestQuery(t *testing.T) {
	// XEP-0202 §3: 2006-12-19T17:58:35Z.
	instant := time.Date(2006, 12, 19, 17, 58, 35, 420e6, time.UTC)
	summer := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	// time/tzdata (imported below) makes the zone available everywhere.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		now  time.Time
		zone *time.Location
		want string
	}{
		{"XEP example", instant, time.FixedZone("CST", -6*3600), "<time xmlns='urn:xmpp:time'><tzo>-06:00</tzo><utc>2006-12-19T17:58:35Z</utc></time>"},
		{"east of UTC", instant, time.FixedZone("CET", 3600), "<time xmlns='urn:xmpp:time'><tzo>+01:00</tzo><utc>2006-12-19T17:58:35Z</utc></time>"},
		{"half hour", instant, time.FixedZone("IST", 5*3600+1800), "<time xmlns='urn:xmpp:time'><tzo>+05:30</tzo><utc>2006-12-19T17:58:35Z</utc></time>"},
		{"UTC", instant, time.UTC, "<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>2006-12-19T17:58:35Z</utc></time>"},
		{"a time given in another zone", instant.In(time.FixedZone("X", 7200)), time.UTC, "<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>2006-12-19T17:58:35Z</utc></time>"},
		{"daylight saving time", summer, berlin, "<time xmlns='urn:xmpp:time'><tzo>+02:00</tzo><utc>2026-07-01T12:00:00Z</utc></time>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := modtest.New(t, modtest.Options{}, withClock(t, tt.now, tt.zone))
			srv.Account("alice")
			a := srv.Connect("alice@example.com/phone")
			a.SendXML("<iq type='get' id='t' to='example.com'><time xmlns='urn:xmpp:time'/></iq>")
			r := a.NextIQ("t")
			if r.Type != "result" || r.From.String() != "example.com" {
				t.Fatalf("reply %s", r.El)
			}
			if got := r.Payload().String(); got != tt.want {
				t.Errorf("payload %s, want %s", got, tt.want)
			}
		})
	}
}

func TestDefaultClock(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "time"))
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	before := time.Now().Add(-time.Second)
	a.SendXML("<iq type='get' id='t' to='example.com'><time xmlns='urn:xmpp:time'/></iq>")
	p := a.NextIQ("t").Payload()
	tzo, utc := p.ChildText(NS, "tzo"), p.ChildText(NS, "utc")
	if !regexp.MustCompile(`^[+-]\d\d:\d\d$`).MatchString(tzo) {
		t.Errorf("tzo %q", tzo)
	}
	at, err := time.Parse("2006-01-02T15:04:05Z", utc)
	if err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
		t.Errorf("utc %q (%v)", utc, err)
	}
}

func TestErrors(t *testing.T) {
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "time"))
	srv.Account("alice")
	a := srv.Connect("alice@example.com/phone")
	tests := []struct{ name, xml string }{
		{"set", "<iq type='set' id='t' to='example.com'><time xmlns='urn:xmpp:time'/></iq>"},
		{"to an account", "<iq type='get' id='t' to='alice@example.com'><time xmlns='urn:xmpp:time'/></iq>"},
		{"legacy jabber:iq:time", "<iq type='get' id='t' to='example.com'><query xmlns='jabber:iq:time'/></iq>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.SendXML(tt.xml)
			if got := modtest.ErrorCondition(a.NextIQ("t")); got != stanza.ServiceUnavailable {
				t.Errorf("condition %q", got)
			}
		})
	}
	if f := srv.Host.DiscoInfo(module.ToHost).Features; !slices.Equal(f, []string{NS}) {
		t.Errorf("host features = %q", f)
	}
	if f := srv.Host.DiscoInfo(module.ToAccount).Features; len(f) != 0 {
		t.Errorf("account features = %q", f)
	}
}
