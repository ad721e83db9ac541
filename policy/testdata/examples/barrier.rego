# Information barrier: Trading and Research may not talk to each other
# (a Chinese wall). A deny beats every allow.
package kontor.contact

walled := {"Trading", "Research"}

deny contains {
	"reason": "information_barrier",
	"message": "Trading and Research may not communicate (information barrier).",
} if {
	input.from.department in walled
	input.to.department in walled
	input.from.department != input.to.department
}
