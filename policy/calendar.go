package policy

import (
	"fmt"
	"strconv"
	"time"
)

// maxRetentionYears bounds any rule: a longer period is a typo.
const maxRetentionYears = 200

// Rule is one applicable retention rule from the policy. Exactly one of
// the periods is set.
type Rule struct {
	Class string `json:"class"`
	// Days, Months and Years count from the message.
	Days   int `json:"days,omitempty"`
	Months int `json:"months,omitempty"`
	Years  int `json:"years,omitempty"`
	// YearsAfterYearEnd counts from the end of the message's calendar
	// year (HGB § 257 (5), AO § 147 (4)).
	YearsAfterYearEnd int    `json:"years_after_year_end,omitempty"`
	afterYearEnd      bool   // YearsAfterYearEnd was given (it may be 0)
	period            string // Period, computed once when decoded
}

// Until is the first instant at which a message sent at `at` may be
// deleted under r, in the calendar of loc. Periods from the message add
// calendar days, months and years in loc (time.AddDate: 31 March plus one
// month is 1 May, 29 February plus one year is 1 March, both on the late
// side, which is the safe side for a retention duty). A period after the
// end of the year ends with the last day of the year N years after the
// message's year, so deletion may start on 1 January of the year after
// that, at midnight in loc.
func (r Rule) Until(at time.Time, loc *time.Location) time.Time {
	t := at.In(loc)
	if r.afterYearEnd {
		return time.Date(t.Year()+r.YearsAfterYearEnd+1, time.January, 1, 0, 0, 0, 0, loc)
	}
	return t.AddDate(r.Years, r.Months, r.Days)
}

// Period describes the rule for people.
func (r Rule) Period() string {
	if r.period != "" {
		return r.period
	}
	if r.afterYearEnd {
		return plural(r.YearsAfterYearEnd, "year") + " after the end of the year"
	}
	var s string
	for _, p := range []struct {
		n    int
		unit string
	}{{r.Years, "year"}, {r.Months, "month"}, {r.Days, "day"}} {
		if p.n != 0 {
			if s != "" {
				s += " "
			}
			s += plural(p.n, p.unit)
		}
	}
	if s == "" {
		return "0 days"
	}
	return s
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

func (r Rule) validate() error {
	if r.Class == "" {
		return fmt.Errorf("policy: retention rule without a class")
	}
	for _, n := range []int{r.Days, r.Months, r.Years, r.YearsAfterYearEnd} {
		if n < 0 {
			return fmt.Errorf("policy: retention rule %s: negative period", r.Class)
		}
	}
	if r.Years > maxRetentionYears || r.YearsAfterYearEnd > maxRetentionYears ||
		r.Months > maxRetentionYears*12 || r.Days > maxRetentionYears*366 {
		return fmt.Errorf("policy: retention rule %s: longer than %d years", r.Class, maxRetentionYears)
	}
	if r.afterYearEnd && (r.Days != 0 || r.Months != 0 || r.Years != 0) {
		return fmt.Errorf("policy: retention rule %s: years_after_year_end does not combine with days, months or years", r.Class)
	}
	return nil
}

// longest returns the rule whose deletion date is latest for a message
// sent at `at` (the longest applicable retention wins), with that date;
// ties go to the class that sorts first. ok is false for no rules.
func longest(rules []Rule, at time.Time, loc *time.Location) (best Rule, until time.Time, ok bool) {
	for _, r := range rules {
		u := r.Until(at, loc)
		if !ok || u.After(until) || (u.Equal(until) && r.Class < best.Class) {
			best, until, ok = r, u, true
		}
	}
	return best, until, ok
}
