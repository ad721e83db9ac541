# A retention class of our own: chats of the Legal department with
# business contacts are contract correspondence, kept 10 years after the
# end of the year. The longest applicable rule wins, so these outlast the
# 6 years of business letters; a legal hold still keeps everything.
package kontor.retention

rules contains {"class": "contract", "years_after_year_end": 10} if {
	some p in parties
	p.department == "Legal"
	some q in parties
	q.kind == "external"
}
