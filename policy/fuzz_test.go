package policy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"kontor.im/kontor/core/gate"
)

var (
	fuzzEngineOnce sync.Once
	fuzzEngine     *Engine
)

func sharedEngine(t *testing.T) *Engine {
	fuzzEngineOnce.Do(func() {
		e, err := New(context.Background(), Options{Timeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		fuzzEngine = e
	})
	return fuzzEngine
}

// FuzzParseInput checks, for any bytes and decision: ParseInput does not
// panic, fails with a "policy: " error, and what it accepts is the
// decision's input with canonical JIDs, which the engine decides without
// panicking, with an id.
func FuzzParseInput(f *testing.F) {
	names := Decisions()
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := names[int(which)%len(names)]
		in, err := ParseInput(name, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "policy: ") {
				t.Fatalf("error %q", err)
			}
			return
		}
		check := func(p gate.Party) {
			if p.JID != "" && canonicalJID(p.JID) != p.JID {
				t.Fatalf("party JID %q is not canonical", p.JID)
			}
		}
		switch v := in.Value.(type) {
		case gate.ContactInput:
			check(v.From)
			check(v.To)
		case gate.RetentionInput:
			check(v.From)
			check(v.To)
		case gate.E2EEInput:
			check(v.From)
			check(v.To)
		case gate.UploadInput:
			check(v.From)
		case gate.PushInput:
			check(v.User)
			check(v.Sender)
		case gate.AccessInput, gate.RegistrationInput:
		default:
			t.Fatalf("value %T for %s", in.Value, name)
		}
		for _, p := range in.People {
			if canonicalJID(p.JID) != p.JID {
				t.Fatalf("person %q", p.JID)
			}
		}
		// Deciding on the fuzzed input must not panic; the directory stays
		// the engine's (people from inputs are for `kontor policy eval`).
		in.People = nil
		got, err := sharedEngine(t).Eval(context.Background(), in, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var id string
		switch d := got.(type) {
		case gate.Decision:
			id = d.ID
		case gate.RetentionDecision:
			id = d.ID
		case gate.AccessDecision:
			id = d.ID
		case gate.UploadDecision:
			id = d.ID
		case gate.PushDecision:
			id = d.ID
		}
		if id == "" {
			t.Fatalf("decision without an id: %+v", got)
		}
	})
}

// FuzzDecodeOutcome checks, for any Rego value as a policy's answer:
// decoding does not panic, refuses with errInvalid, and what it accepts
// stays within the bounds the engine promises.
func FuzzDecodeOutcome(f *testing.F) {
	f.Fuzz(func(t *testing.T, which uint8, text string) {
		k := kind(int(which) % int(numKinds))
		term, err := ast.ParseTerm(text)
		if err != nil {
			return
		}
		o, err := decodeOutcome(k, term.Value)
		if err != nil {
			if !errors.Is(err, errInvalid) {
				t.Fatalf("error %v is not errInvalid", err)
			}
			return
		}
		if !validReason(o.reason) || len(o.message) > maxMessageLen || len(o.rules) > maxRules || o.approvalsNeeded < 0 ||
			o.maxSize < 0 || len(o.contentTypes) > maxTypes {
			t.Fatalf("accepted %+v", o)
		}
		for _, r := range o.rules {
			if err := r.validate(); err != nil {
				t.Fatalf("accepted rule %+v: %v", r, err)
			}
			r.Until(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.UTC)
		}
	})
}

// FuzzPolicySource checks, for any text as an added policy file: loading
// does not panic, and refuses with a *LoadError whose problems each name
// a file or a decision.
func FuzzPolicySource(f *testing.F) {
	base, err := readSources("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 4096 {
			return
		}
		files := append(append([]File(nil), base...), newFile("fuzz.rego", "/policy/fuzz.rego", []byte(src)))
		pol, err := compilePolicy(files, false, nil)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("error %v is not a LoadError with problems", err)
			}
			for _, p := range le.Problems {
				if p.File == "" && !strings.Contains(p.Message, "decision") && !strings.Contains(p.Message, "rego_") {
					t.Fatalf("problem without a file: %+v", p)
				}
			}
			return
		}
		if pol.revision == "" {
			t.Fatal("no revision")
		}
	})
}
