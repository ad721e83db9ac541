package gate

import (
	"context"
	"testing"

	contract "kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/module"
)

// allowAll answers every question with the same decision, so that the
// benchmark measures the module, not a policy.
type allowAll struct{ fakeDecider }

func (*allowAll) Contact(context.Context, contract.ContactInput) contract.Decision {
	return contract.Decision{ID: "d", Allow: true, Reason: "internal"}
}

// BenchmarkHook measures the module's hook for a chat message with a
// decider that answers at once: the cost the module adds to the message
// path besides the policy's answer.
func BenchmarkHook(b *testing.B) {
	srv := newServer(b, &allowAll{})
	alice := srv.Connect("alice@example.com/a")
	var g *Gate
	for _, m := range srv.Host.Modules() {
		if x, ok := m.Module.(*Gate); ok {
			g = x
		}
	}
	s := parseOrFail(b, "<message to='bob@example.com/b' type='chat' id='m1'><body>hello</body></message>")
	p := &module.Packet{Stanza: s, Origin: alice.Res, Target: module.ToResource}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if v, err := g.outbound(ctx, p); v != module.Continue || err != nil {
			b.Fatal(v, err)
		}
	}
}
