package pep_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"kontor.im/kontor/core/mod/pep"
	_ "kontor.im/kontor/core/mod/vcard"
	"kontor.im/kontor/core/modtest"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/xmlstream"
)

// A 1×1 PNG: what clients publish is real image data.
var pixel, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAFgwJ/lB3tYwAAAABJRU5ErkJggg==")

func sha1hex(b []byte) string { h := sha1.Sum(b); return hex.EncodeToString(h[:]) }

// avatarServer is newServer with the vcard module.
func avatarServer(t *testing.T, opts ...func(*pep.Options)) *modtest.Server {
	t.Helper()
	p := modtest.Module(t, "pep")
	o := p.Module.(interface{ Options() any }).Options().(*pep.Options)
	for _, f := range opts {
		f(o)
	}
	srv := modtest.New(t, modtest.Options{}, modtest.Module(t, "roster"), modtest.Module(t, "presence"), p,
		modtest.Module(t, "disco"), modtest.Module(t, "vcard"))
	for _, u := range []string{"alice", "bob"} {
		srv.Account(u)
	}
	return srv
}

// storedPhoto returns the TYPE and image of alice's stored vCard PHOTO.
func storedPhoto(t *testing.T, srv *modtest.Server, owner string) (string, []byte) {
	t.Helper()
	b, err := srv.Store.VCard(context.Background(), owner)
	if err != nil {
		return "", nil
	}
	card, err := xmlstream.ParseElement(b, xmlstream.Limits{MaxStanzaBytes: len(b) + 1024})
	if err != nil {
		t.Fatal(err)
	}
	ph := card.Child(pep.NSVCard, "PHOTO")
	if ph == nil {
		return "", nil
	}
	img, err := base64.StdEncoding.DecodeString(ph.ChildText(pep.NSVCard, "BINVAL"))
	if err != nil {
		t.Fatal(err)
	}
	return ph.ChildText(pep.NSVCard, "TYPE"), img
}

func publishAvatar(t *testing.T, c *client, img []byte, id string) {
	t.Helper()
	data := "<data xmlns='urn:xmpp:avatar:data'>" + base64.StdEncoding.EncodeToString(img) + "</data>"
	if r := c.publish("", avatarData, id, data); r.Type != "result" {
		t.Fatalf("publish data: %s", r.El)
	}
	meta := "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='" + "70" + "' id='" + id +
		"' type='image/png' height='1' width='1'/><info id='elsewhere' url='https://example.com/a.png' type='image/png' bytes='1'/></metadata>"
	if r := c.publish("", avatarMetadata, id, meta); r.Type != "result" {
		t.Fatalf("publish metadata: %s", r.El)
	}
}

// photoOf returns the vcard-temp:x:update photo of a presence, and whether
// it has one.
func photoOf(s *stanza.Stanza) (string, bool) {
	x := s.El.Child(pep.NSVCardUpdate, "x")
	if x == nil {
		return "", false
	}
	ph := x.Child(pep.NSVCardUpdate, "photo")
	if ph == nil {
		return "", false
	}
	return ph.Text(), true
}

func isPresenceFrom(full string) func(*stanza.Stanza) bool {
	return func(s *stanza.Stanza) bool { return s.Kind == stanza.KindPresence && s.From.String() == full }
}

func TestAvatarPEPToVCard(t *testing.T) {
	srv := avatarServer(t)
	phone := online(t, srv, "alice@example.com/phone")
	laptop := online(t, srv, "alice@example.com/laptop")
	id := sha1hex(pixel)
	publishAvatar(t, phone, pixel, id)

	typ, img := storedPhoto(t, srv, "alice@example.com")
	if typ != "image/png" || string(img) != string(pixel) {
		t.Fatalf("vCard PHOTO %q, %d bytes; want the published PNG", typ, len(img))
	}
	// What a XEP-0153 client reads.
	r := laptop.ok("<iq type='get' to='alice@example.com'><vCard xmlns='vcard-temp'/></iq>")
	if !strings.Contains(r.El.String(), base64.StdEncoding.EncodeToString(pixel)) {
		t.Errorf("vCard get: %s", r.El)
	}
	// The hash goes into every available presence from now on.
	laptop.Received()
	phone.SendXML("<presence><show>away</show></presence>")
	p := laptop.Next(isPresenceFrom("alice@example.com/phone"))
	if h, ok := photoOf(p); !ok || h != id {
		t.Errorf("presence %s, want photo %s", p.El, id)
	}
	// An empty <photo/> is the client's word: left alone. An x without a
	// photo is filled in.
	laptop.Received()
	phone.SendXML("<presence><x xmlns='vcard-temp:x:update'><photo/></x></presence>")
	if h, ok := photoOf(laptop.Next(isPresenceFrom("alice@example.com/phone"))); !ok || h != "" {
		t.Errorf("an empty photo became %q", h)
	}
	laptop.Received()
	phone.SendXML("<presence><x xmlns='vcard-temp:x:update'/></presence>")
	p = laptop.Next(isPresenceFrom("alice@example.com/phone"))
	if h, ok := photoOf(p); !ok || h != id || strings.Count(p.El.String(), "vcard-temp:x:update") != 1 {
		t.Errorf("an x without photo: %s", p.El)
	}

	// An empty metadata item removes the avatar, and the PHOTO with it.
	if r := phone.publish("", avatarMetadata, "none", "<metadata xmlns='urn:xmpp:avatar:metadata'/>"); r.Type != "result" {
		t.Fatal(r.El)
	}
	if _, img := storedPhoto(t, srv, "alice@example.com"); img != nil {
		t.Error("the PHOTO stayed after the avatar was removed")
	}
	laptop.Received()
	phone.SendXML("<presence/>")
	if p := laptop.Next(isPresenceFrom("alice@example.com/phone")); p.El.Child(pep.NSVCardUpdate, "x") != nil {
		t.Errorf("presence after removal: %s", p.El)
	}
}

func TestAvatarDataMustMatchItsID(t *testing.T) {
	srv := avatarServer(t)
	phone := online(t, srv, "alice@example.com/phone")
	publishAvatar(t, phone, pixel, strings.Repeat("ab", 20)) // not the SHA-1 of the image
	if _, img := storedPhoto(t, srv, "alice@example.com"); img != nil {
		t.Error("an avatar whose data does not match its id became the vCard PHOTO")
	}
}

func TestAvatarVCardToPEP(t *testing.T) {
	srv := avatarServer(t)
	contacts(t, srv, "alice", "bob")
	bob := online(t, srv, "bob@example.com/pc", avatarMetadata)
	alice := online(t, srv, "alice@example.com/old-client")
	id := sha1hex(pixel)
	alice.ok("<iq type='set'><vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" +
		base64.StdEncoding.EncodeToString(pixel) + "</BINVAL></PHOTO></vCard></iq>")

	// bob's client, interested in avatars, is told of the new metadata.
	ev := bob.Next(func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindMessage && strings.Contains(s.El.String(), "urn:xmpp:avatar:metadata")
	})
	if !strings.Contains(ev.El.String(), "id='"+id+"'") && !strings.Contains(ev.El.String(), `id="`+id+`"`) {
		t.Errorf("notification %s", ev.El)
	}
	// Both nodes hold the avatar under its SHA-1.
	r := bob.ok("<iq type='get' to='alice@example.com'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:avatar:data'><item id='" + id + "'/></items></pubsub></iq>")
	if !strings.Contains(r.El.String(), base64.StdEncoding.EncodeToString(pixel)) {
		t.Errorf("data item: %s", r.El)
	}
	// Setting the same vCard again publishes nothing new.
	alice.ok("<iq type='set'><vCard xmlns='vcard-temp'><FN>Alice B.</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" +
		base64.StdEncoding.EncodeToString(pixel) + "</BINVAL></PHOTO></vCard></iq>")
	bob.Nothing(quiet, func(s *stanza.Stanza) bool {
		return s.Kind == stanza.KindMessage && strings.Contains(s.El.String(), "urn:xmpp:avatar:metadata")
	})
	// And the hash is in alice's presence.
	bob.Received()
	alice.SendXML("<presence/>")
	if h, ok := photoOf(bob.Next(isPresenceFrom("alice@example.com/old-client"))); !ok || h != id {
		t.Errorf("bob sees photo %q", h)
	}
}

func TestAvatarConversionOff(t *testing.T) {
	srv := avatarServer(t, func(o *pep.Options) { o.AvatarConversion = false })
	phone := online(t, srv, "alice@example.com/phone")
	publishAvatar(t, phone, pixel, sha1hex(pixel))
	if _, img := storedPhoto(t, srv, "alice@example.com"); img != nil {
		t.Error("converted with avatar_conversion off")
	}
	r := phone.ok("<iq type='get' to='alice@example.com'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
	if strings.Contains(r.El.String(), pep.FeatureVCardConversion) {
		t.Error("the conversion is announced while off")
	}
}
