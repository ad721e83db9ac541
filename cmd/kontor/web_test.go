package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
)

// httpModule serves its domain and base URL under /hello/.
type httpModule struct{ base string }

func (m *httpModule) Provision(h module.Host) error {
	m.base = h.HTTPBaseURL()
	h.HandleHTTP("/hello/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, h.Domain().String()+" "+h.HTTPBaseURL())
	}))
	return nil
}

// TestWebHandlerRouting: module handlers are reached by the request's
// Host header (any port), or the only host's when there is one; base
// URLs follow http.public_url.
func TestWebHandlerRouting(t *testing.T) {
	build := func(t *testing.T, public string, domains ...string) (*webHandler, map[string]*httpModule) {
		t.Helper()
		r := router.New(router.Config{Logger: slog.New(slog.DiscardHandler), HTTPBaseURL: func(d string) string {
			return baseURL(public, "5443", d)
		}})
		mods := map[string]*httpModule{}
		for _, d := range domains {
			m := &httpModule{}
			mods[d] = m
			if _, err := r.AddHost(jid.MustParse(d), []router.Enabled{{Info: module.Info{ID: "hello"}, Module: m}}); err != nil {
				t.Fatal(err)
			}
		}
		return &webHandler{router: r, domains: domains}, mods
	}
	get := func(h http.Handler, host, path string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, "https://"+host+path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}

	h, mods := build(t, "", "a.example", "b.example")
	if mods["a.example"].base != "https://a.example:5443" {
		t.Errorf("base URL = %q", mods["a.example"].base)
	}
	for _, tc := range []struct {
		host, path string
		code       int
		body       string
	}{
		{"a.example:5443", "/hello/x", 200, "a.example https://a.example:5443"},
		{"B.example.", "/hello/", 200, "b.example https://b.example:5443"},
		{"c.example", "/hello/", 404, ""},
		{"a.example", "/other", 404, ""},
	} {
		code, body := get(h, tc.host, tc.path)
		if code != tc.code || tc.body != "" && body != tc.body {
			t.Errorf("GET https://%s%s = %d %q, want %d %q", tc.host, tc.path, code, body, tc.code, tc.body)
		}
	}

	h, mods = build(t, "https://chat.example.com/{domain}/", "only.example")
	if mods["only.example"].base != "https://chat.example.com/only.example" {
		t.Errorf("public base URL = %q", mods["only.example"].base)
	}
	if code, body := get(h, "chat.example.com", "/hello/"); code != 200 || body != "only.example https://chat.example.com/only.example" {
		t.Errorf("the only host by another name: %d %q", code, body)
	}
}
