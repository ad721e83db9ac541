package policy

import (
	"testing"
	"time"
)

func TestRuleUntil(t *testing.T) {
	utc := time.UTC
	tests := []struct {
		name   string
		rule   Rule
		at     time.Time
		loc    *time.Location
		want   time.Time
		period string
	}{
		{"90 days", Rule{Class: "internal", Days: 90}, time.Date(2025, 1, 10, 12, 0, 0, 0, berlin), berlin,
			time.Date(2025, 4, 10, 12, 0, 0, 0, berlin), "90 days"},
		{"days across the DST change keep the wall clock", Rule{Class: "internal", Days: 1}, time.Date(2025, 3, 29, 12, 0, 0, 0, berlin), berlin,
			time.Date(2025, 3, 30, 12, 0, 0, 0, berlin), "1 day"},
		{"6 years after the end of the year", Rule{Class: "business_letter", YearsAfterYearEnd: 6, afterYearEnd: true}, time.Date(2025, 3, 14, 0, 0, 0, 0, berlin), berlin,
			time.Date(2032, 1, 1, 0, 0, 0, 0, berlin), "6 years after the end of the year"},
		{"a message of 31 December", Rule{Class: "business_letter", YearsAfterYearEnd: 6, afterYearEnd: true}, time.Date(2025, 12, 31, 23, 59, 59, 0, berlin), berlin,
			time.Date(2032, 1, 1, 0, 0, 0, 0, berlin), "6 years after the end of the year"},
		{"new year's eve in UTC is new year in Berlin", Rule{Class: "accounting_record", YearsAfterYearEnd: 8, afterYearEnd: true}, time.Date(2025, 12, 31, 23, 30, 0, 0, utc), berlin,
			time.Date(2035, 1, 1, 0, 0, 0, 0, berlin), "8 years after the end of the year"},
		{"0 years after the end of the year", Rule{Class: "x", afterYearEnd: true}, time.Date(2025, 5, 1, 0, 0, 0, 0, utc), utc,
			time.Date(2026, 1, 1, 0, 0, 0, 0, utc), "0 years after the end of the year"},
		{"29 February plus one year is 1 March", Rule{Class: "x", Years: 1}, time.Date(2024, 2, 29, 8, 0, 0, 0, utc), utc,
			time.Date(2025, 3, 1, 8, 0, 0, 0, utc), "1 year"},
		{"31 March plus one month is 1 May", Rule{Class: "x", Months: 1}, time.Date(2025, 3, 31, 8, 0, 0, 0, utc), utc,
			time.Date(2025, 5, 1, 8, 0, 0, 0, utc), "1 month"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.Until(tt.at, tt.loc); !got.Equal(tt.want) {
				t.Errorf("until %v, want %v", got, tt.want)
			}
			if got := tt.rule.Period(); got != tt.period {
				t.Errorf("period %q, want %q", got, tt.period)
			}
			if err := tt.rule.validate(); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
}

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
	}{
		{"no class", Rule{Days: 1}},
		{"negative", Rule{Class: "x", Days: -1}},
		{"too long", Rule{Class: "x", Years: 201}},
		{"too many days", Rule{Class: "x", Days: 200*366 + 1}},
		{"year end mixed with days", Rule{Class: "x", Days: 1, YearsAfterYearEnd: 1, afterYearEnd: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.rule.validate(); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestLongestWins(t *testing.T) {
	at := time.Date(2025, 6, 1, 0, 0, 0, 0, berlin)
	internal := Rule{Class: "internal", Days: 90}
	letter := Rule{Class: "business_letter", YearsAfterYearEnd: 6, afterYearEnd: true}
	record := Rule{Class: "accounting_record", YearsAfterYearEnd: 8, afterYearEnd: true}
	tests := []struct {
		name  string
		rules []Rule
		want  string
		ok    bool
	}{
		{"none", nil, "", false},
		{"one", []Rule{internal}, "internal", true},
		{"letter beats internal", []Rule{internal, letter}, "business_letter", true},
		{"record beats letter whatever the order", []Rule{record, internal, letter}, "accounting_record", true},
		{"ties go to the first class by name", []Rule{{Class: "b", Days: 10}, {Class: "a", Days: 10}}, "a", true},
		{"ten years from the message beat 8 after the year end in June", []Rule{record, {Class: "contract", Years: 10}}, "contract", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			best, _, ok := longest(tt.rules, at, berlin)
			if ok != tt.ok || best.Class != tt.want {
				t.Errorf("got %q (%v), want %q (%v)", best.Class, ok, tt.want, tt.ok)
			}
		})
	}
}
