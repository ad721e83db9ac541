package kontor.contracts_test

import data.kontor.lib
import data.kontor.retention

lena := object.union(lib.party("lena@example.com", "employee"), {"department": "Legal"})

anna := object.union(lib.party("anna@example.com", "employee"), {"department": "Sales"})

cora := lib.party("cora@customer.example", "external")

chat(from, to) := {"from": from, "to": to, "room": "", "stanza_type": "chat", "encrypted": false, "legal_hold": false}

test_legal_with_a_customer_is_a_contract if {
	d := retention.decision with input as chat(lena, cora)
	{"class": "contract", "years_after_year_end": 10} in d.rules
	{"class": "business_letter", "years_after_year_end": 6} in d.rules
}

test_sales_with_a_customer_is_a_business_letter if {
	d := retention.decision with input as chat(anna, cora)
	not "contract" in {r.class | some r in d.rules}
}

test_legal_internally_is_internal if {
	d := retention.decision with input as chat(lena, anna)
	d.rules == {{"class": "internal", "days": 90}}
}
