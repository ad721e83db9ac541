package kontor.barrier_test

import data.kontor.contact
import data.kontor.lib

trader := object.union(lib.party("tom@example.com", "employee"), {"department": "Trading"})

analyst := object.union(lib.party("ben@example.com", "employee"), {"department": "Research"})

seller := object.union(lib.party("anna@example.com", "employee"), {"department": "Sales"})

msg(from, to) := {"action": "message", "stanza_type": "chat", "from": from, "to": to, "room": ""}

test_trading_cannot_reach_research if {
	d := contact.decision with input as msg(trader, analyst)
	not d.allow
	d.reason == "information_barrier"
}

test_research_cannot_reach_trading if {
	not contact.decision.allow with input as msg(analyst, trader)
}

test_others_are_not_walled if {
	contact.decision.allow with input as msg(seller, analyst)
	contact.decision.allow with input as msg(trader, seller)
}
