// Package rosterstate holds what the roster and presence modules share: the
// presence subscription state machine of RFC 6121 Appendix A as one table,
// reading and storing a contact's state under a per-owner lock, roster items
// as XML, roster pushes to interested resources (RFC 6121 §2.1.6), and
// sending a user's presence to a contact when a subscription starts or ends.
//
// It is a library, not a module: core/mod/roster and core/mod/presence
// import it, and never each other.
//
// A state combines the subscription of a roster item (none, to, from,
// both) with two pending flags: PendingOut is the item's AskOut (the user
// asked the contact and has no answer yet), PendingIn is a stored
// storage.SubscriptionRequest from the contact (the contact asked the user).
// Subscription stanzas change the state only through the tables in this
// file, Outbound for what a local user sends (Appendix A.2) and Inbound for
// what a local user receives (Appendix A.3). Pre-approval (§3.4) is not
// part of them: the roster store cannot record it yet.
package rosterstate

import "kontor.im/kontor/core/storage"

// State is one of the nine subscription states of RFC 6121 Appendix A.1.
type State uint8

const (
	None State = iota
	NonePendingOut
	NonePendingIn
	NonePendingOutIn
	To
	ToPendingIn
	From
	FromPendingOut
	Both
	numStates
)

// states describes each State; Of searches it.
var states = [numStates]struct {
	sub     storage.Subscription
	out, in bool
	name    string // as RFC 6121 Appendix A spells it
}{
	None:             {storage.SubNone, false, false, "None"},
	NonePendingOut:   {storage.SubNone, true, false, "None + Pending Out"},
	NonePendingIn:    {storage.SubNone, false, true, "None + Pending In"},
	NonePendingOutIn: {storage.SubNone, true, true, "None + Pending Out+In"},
	To:               {storage.SubTo, false, false, "To"},
	ToPendingIn:      {storage.SubTo, false, true, "To + Pending In"},
	From:             {storage.SubFrom, false, false, "From"},
	FromPendingOut:   {storage.SubFrom, true, false, "From + Pending Out"},
	Both:             {storage.SubBoth, false, false, "Both"},
}

// Of returns the state of an item with subscription sub, AskOut pendingOut,
// and pendingIn when a subscription request from the contact is stored. A
// pending flag that no state allows (an ask on an item that already has
// 'to', a request from a contact that already has 'from') is stale and
// ignored.
func Of(sub storage.Subscription, pendingOut, pendingIn bool) State {
	if sub == "" {
		sub = storage.SubNone
	}
	if sub == storage.SubTo || sub == storage.SubBoth {
		pendingOut = false
	}
	if sub == storage.SubFrom || sub == storage.SubBoth {
		pendingIn = false
	}
	for s, d := range states {
		if d.sub == sub && d.out == pendingOut && d.in == pendingIn {
			return State(s)
		}
	}
	return None // an unknown subscription value: treat as none
}

// Subscription is the 'subscription' attribute of the state's roster item.
func (s State) Subscription() storage.Subscription { return states[s].sub }

// PendingOut reports whether the user's own request awaits an answer
// (ask='subscribe').
func (s State) PendingOut() bool { return states[s].out }

// PendingIn reports whether the contact's request awaits the user's answer.
func (s State) PendingIn() bool { return states[s].in }

// HasTo reports whether the user receives the contact's presence.
func (s State) HasTo() bool { return s == To || s == ToPendingIn || s == Both }

// HasFrom reports whether the contact receives the user's presence.
func (s State) HasFrom() bool { return s == From || s == FromPendingOut || s == Both }

func (s State) String() string {
	if s >= numStates {
		return "State?"
	}
	return states[s].name
}

// Type is the type of a presence subscription stanza.
type Type uint8

const (
	Subscribe Type = iota
	Subscribed
	Unsubscribe
	Unsubscribed
	numTypes
)

var typeNames = [numTypes]string{"subscribe", "subscribed", "unsubscribe", "unsubscribed"}

// ParseType returns the Type of a presence 'type' attribute, and false for
// presence that is not about subscriptions.
func ParseType(s string) (Type, bool) {
	for t, n := range typeNames {
		if n == s {
			return Type(t), true
		}
	}
	return 0, false
}

func (t Type) String() string {
	if t >= numTypes {
		return "type?"
	}
	return typeNames[t]
}

// Rule is one row of Appendix A: the state after the stanza, and whether
// the server sends the stanza on (routes it to the contact for Outbound,
// delivers it to the user for Inbound). Forward false is the tables'
// "SHOULD NOT"; Next equal to the current state is "no state change".
type Rule struct {
	Next    State
	Forward bool
	// AutoReply (Inbound subscribe only): the contact is already
	// subscribed, so the server answers 'subscribed' on the user's behalf
	// instead of asking the user again (A.3.1, note 2; §3.1.3).
	AutoReply bool
}

// Outbound returns the rule for a subscription stanza the user sends to a
// contact whose state is s (RFC 6121 Appendix A.2).
func Outbound(s State, t Type) Rule { return outbound[t][s] }

// Inbound returns the rule for a subscription stanza the user receives from
// a contact whose state is s (RFC 6121 Appendix A.3).
func Inbound(s State, t Type) Rule { return inbound[t][s] }

// outbound is Appendix A.2. Subscribe and unsubscribe are always routed,
// so that a user can resynchronise with the contact's server; subscribed
// and unsubscribed only when they change the state.
var outbound = [numTypes][numStates]Rule{
	Subscribe: { // A.2.1
		None:             {Next: NonePendingOut, Forward: true},
		NonePendingOut:   {Next: NonePendingOut, Forward: true},
		NonePendingIn:    {Next: NonePendingOutIn, Forward: true},
		NonePendingOutIn: {Next: NonePendingOutIn, Forward: true},
		To:               {Next: To, Forward: true},
		ToPendingIn:      {Next: ToPendingIn, Forward: true},
		From:             {Next: FromPendingOut, Forward: true},
		FromPendingOut:   {Next: FromPendingOut, Forward: true},
		Both:             {Next: Both, Forward: true},
	},
	Unsubscribe: { // A.2.2
		None:             {Next: None, Forward: true},
		NonePendingOut:   {Next: None, Forward: true},
		NonePendingIn:    {Next: NonePendingIn, Forward: true},
		NonePendingOutIn: {Next: NonePendingIn, Forward: true},
		To:               {Next: None, Forward: true},
		ToPendingIn:      {Next: NonePendingIn, Forward: true},
		From:             {Next: From, Forward: true},
		FromPendingOut:   {Next: From, Forward: true},
		Both:             {Next: From, Forward: true},
	},
	Subscribed: { // A.2.3 (None would be pre-approval, §3.4: not supported)
		None:             {Next: None},
		NonePendingOut:   {Next: NonePendingOut},
		NonePendingIn:    {Next: From, Forward: true},
		NonePendingOutIn: {Next: FromPendingOut, Forward: true},
		To:               {Next: To},
		ToPendingIn:      {Next: Both, Forward: true},
		From:             {Next: From},
		FromPendingOut:   {Next: FromPendingOut},
		Both:             {Next: Both},
	},
	Unsubscribed: { // A.2.4
		None:             {Next: None},
		NonePendingOut:   {Next: NonePendingOut},
		NonePendingIn:    {Next: None, Forward: true},
		NonePendingOutIn: {Next: NonePendingOut, Forward: true},
		To:               {Next: To},
		ToPendingIn:      {Next: To, Forward: true},
		From:             {Next: None, Forward: true},
		FromPendingOut:   {Next: NonePendingOut, Forward: true},
		Both:             {Next: To, Forward: true},
	},
}

// inbound is Appendix A.3: a stanza that changes nothing is not delivered.
var inbound = [numTypes][numStates]Rule{
	Subscribe: { // A.3.1
		None:             {Next: NonePendingIn, Forward: true},
		NonePendingOut:   {Next: NonePendingOutIn, Forward: true},
		NonePendingIn:    {Next: NonePendingIn},
		NonePendingOutIn: {Next: NonePendingOutIn},
		To:               {Next: ToPendingIn, Forward: true},
		ToPendingIn:      {Next: ToPendingIn},
		From:             {Next: From, AutoReply: true},
		FromPendingOut:   {Next: FromPendingOut, AutoReply: true},
		Both:             {Next: Both, AutoReply: true},
	},
	Unsubscribe: { // A.3.2
		None:             {Next: None},
		NonePendingOut:   {Next: NonePendingOut},
		NonePendingIn:    {Next: None, Forward: true},
		NonePendingOutIn: {Next: NonePendingOut, Forward: true},
		To:               {Next: To},
		ToPendingIn:      {Next: To, Forward: true},
		From:             {Next: None, Forward: true},
		FromPendingOut:   {Next: NonePendingOut, Forward: true},
		Both:             {Next: To, Forward: true},
	},
	Subscribed: { // A.3.3
		None:             {Next: None},
		NonePendingOut:   {Next: To, Forward: true},
		NonePendingIn:    {Next: NonePendingIn},
		NonePendingOutIn: {Next: ToPendingIn, Forward: true},
		To:               {Next: To},
		ToPendingIn:      {Next: ToPendingIn},
		From:             {Next: From},
		FromPendingOut:   {Next: Both, Forward: true},
		Both:             {Next: Both},
	},
	Unsubscribed: { // A.3.4
		None:             {Next: None},
		NonePendingOut:   {Next: None, Forward: true},
		NonePendingIn:    {Next: NonePendingIn},
		NonePendingOutIn: {Next: NonePendingIn, Forward: true},
		To:               {Next: None, Forward: true},
		ToPendingIn:      {Next: NonePendingIn, Forward: true},
		From:             {Next: From},
		FromPendingOut:   {Next: From, Forward: true},
		Both:             {Next: From, Forward: true},
	},
}
