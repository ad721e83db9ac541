package load

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// figure is one row of the comparison table.
type figure struct {
	name    string
	lower   bool // smaller is better
	select_ func(r *Result) (float64, bool)
}

var figures = []figure{
	{"login: CPU ms per login (server+db)", true, func(r *Result) (float64, bool) { return r.CPUPerOpMS, r.Scenario == "login" }},
	{"login: p99 ms", true, func(r *Result) (float64, bool) { return r.P99ms, r.Scenario == "login" }},
	{"login: logins/s", false, func(r *Result) (float64, bool) { return r.OpsPerS, r.Scenario == "login" }},
	{"chat@rate: CPU ms per 1000 msgs (server+db)", true, func(r *Result) (float64, bool) {
		return r.CPUPer1000MS, r.Scenario == "chat" && !r.Config.SM && r.Config.Rate > 0
	}},
	{"chat@rate: server CPU ms per 1000 msgs", true, func(r *Result) (float64, bool) {
		return per1000(r.ServerCPUms, r), r.Scenario == "chat" && !r.Config.SM && r.Config.Rate > 0 && r.Ops > 0
	}},
	{"chat@rate: p50 ms", true, func(r *Result) (float64, bool) {
		return r.P50ms, r.Scenario == "chat" && !r.Config.SM && r.Config.Rate > 0
	}},
	{"chat@rate: p99 ms", true, func(r *Result) (float64, bool) {
		return r.P99ms, r.Scenario == "chat" && !r.Config.SM && r.Config.Rate > 0
	}},
	{"chat@rate: p99.9 ms", true, func(r *Result) (float64, bool) {
		return r.P999ms, r.Scenario == "chat" && !r.Config.SM && r.Config.Rate > 0
	}},
	{"chat@max: delivered/s", false, func(r *Result) (float64, bool) {
		return r.OpsPerS, r.Scenario == "chat" && !r.Config.SM && r.Config.Rate == 0
	}},
	{"chat@max: CPU ms per 1000 msgs (server+db)", true, func(r *Result) (float64, bool) {
		return r.CPUPer1000MS, r.Scenario == "chat" && !r.Config.SM && r.Config.Rate == 0
	}},
	{"chat@max: server CPU ms per 1000 msgs", true, func(r *Result) (float64, bool) {
		return per1000(r.ServerCPUms, r), r.Scenario == "chat" && !r.Config.SM && r.Config.Rate == 0 && r.Ops > 0
	}},
	{"chat@max: p99 ms", true, func(r *Result) (float64, bool) {
		return r.P99ms, r.Scenario == "chat" && !r.Config.SM && r.Config.Rate == 0
	}},
	{"chat@rate+sm: server CPU ms per 1000 msgs", true, func(r *Result) (float64, bool) {
		return per1000(r.ServerCPUms, r), r.Scenario == "chat" && r.Config.SM && r.Config.Rate > 0 && r.Ops > 0
	}},
	{"chat@rate+sm: p99 ms", true, func(r *Result) (float64, bool) {
		return r.P99ms, r.Scenario == "chat" && r.Config.SM && r.Config.Rate > 0
	}},
	{"chat@max+sm: server CPU ms per 1000 msgs", true, func(r *Result) (float64, bool) {
		return per1000(r.ServerCPUms, r), r.Scenario == "chat" && r.Config.SM && r.Config.Rate == 0 && r.Ops > 0
	}},
	{"chat: messages lost", true, func(r *Result) (float64, bool) { return float64(r.Lost), r.Scenario == "chat" }},
	{"mam: CPU ms per page of 50 (server+db)", true, func(r *Result) (float64, bool) { return r.CPUPerOpMS, r.Scenario == "mam" }},
	{"mam: messages per page (mean)", false, func(r *Result) (float64, bool) { return r.MessagesPerPage, r.Scenario == "mam" }},
	{"mam: p99 ms per page", true, func(r *Result) (float64, bool) { return r.P99ms, r.Scenario == "mam" }},
	{"idle: KiB per session", true, func(r *Result) (float64, bool) { return r.KiBPerSession, r.Scenario == "idle" && r.KiBPerSession > 0 }},
	{"idle: sessions held", false, func(r *Result) (float64, bool) { return float64(r.Ops), r.Scenario == "idle" }},
	{"errors (all runs)", true, func(r *Result) (float64, bool) { return float64(r.Errors), r.Scenario != "register" }},
	{"errors: runs not quiet before measuring", true, func(r *Result) (float64, bool) {
		if r.QuietTimedOut {
			return 1, r.Scenario != "register"
		}
		return 0, r.Scenario != "register"
	}},
}

// Table reads Result lines and writes one table: the median of each figure
// per server (the sum, for losses and errors), and the ratio of the first
// server in order to the best of the others (below 1 is better when
// smaller is better). Servers appear in order; extra ones (such as a
// second configuration of the first) get a column but are no peer.
func Table(in io.Reader, w io.Writer, order, peers []string) error {
	runs := map[string][]*Result{}
	s := bufio.NewScanner(in)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("load: table: %w", err)
		}
		if r.Config == nil {
			r.Config = &Config{}
		}
		runs[r.Server] = append(runs[r.Server], &r)
		if !slices.Contains(order, r.Server) {
			order = append(order, r.Server)
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "figure\t")
	for _, srv := range order {
		fmt.Fprintf(tw, "%s\t", srv)
	}
	fmt.Fprintf(tw, "%s / best peer\t\n", order[0])
	for _, f := range figures {
		sum := strings.HasPrefix(f.name, "errors") || strings.HasSuffix(f.name, "lost")
		vals := map[string]float64{}
		for _, srv := range order {
			var xs []float64
			for _, r := range runs[srv] {
				if v, ok := f.select_(r); ok {
					xs = append(xs, v)
				}
			}
			if len(xs) == 0 {
				continue
			}
			if sum {
				t := 0.0
				for _, x := range xs {
					t += x
				}
				vals[srv] = t
			} else {
				vals[srv] = median(xs)
			}
		}
		if len(vals) == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t", f.name)
		for _, srv := range order {
			if v, ok := vals[srv]; ok {
				fmt.Fprintf(tw, "%s\t", num(v))
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		best, found := 0.0, false
		for _, p := range peers {
			v, ok := vals[p]
			if !ok || p == order[0] {
				continue
			}
			if !found || (f.lower && v < best) || (!f.lower && v > best) {
				best, found = v, true
			}
		}
		own, ok := vals[order[0]]
		if ok && found && best != 0 && !sum {
			fmt.Fprintf(tw, "%.2f\t\n", own/best)
		} else {
			fmt.Fprint(tw, "-\t\n")
		}
	}
	return tw.Flush()
}

func per1000(cpuMS float64, r *Result) float64 { return cpuMS * 1000 / float64(r.Ops) }

func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func num(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
