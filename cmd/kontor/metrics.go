package main

// The admin listener's GET /metrics: Prometheus text format (version
// 0.0.4), written by hand from the counters the parts keep, so that the
// server needs no metrics library.

import (
	"fmt"
	"io"
	"runtime"
)

// metric is one sample with its help text and type.
type metric struct {
	name, help, typ string
	value           float64
}

// writeMetrics writes every metric the server has.
func (s *Server) writeMetrics(w io.Writer) {
	ms := []metric{
		{"kontor_c2s_connections", "Open client connections.", "gauge", float64(s.c2s.ConnCount())},
		{"kontor_sessions", "Bound client sessions (attached or waiting to be resumed).", "gauge", float64(s.router.SessionCount())},
		{"kontor_sessions_detached", "Sessions that lost their connection and wait to be resumed (XEP-0198).", "gauge", float64(s.c2s.DetachedCount())},
		{"kontor_gomaxprocs", "Processors Go's scheduler runs on (one while the load is light with adaptive_procs).", "gauge", float64(runtime.GOMAXPROCS(0))},
		{"kontor_gomaxprocs_switches_total", "Times adaptive_procs changed the number of processors.", "counter", float64(procSwitches.Load())},
	}
	if n, ok := s.connectedComponents(); ok {
		ms = append(ms, metric{"kontor_components_connected", "External components connected (XEP-0114).", "gauge", float64(n)})
	}
	if s.s2s != nil {
		in, out := s.s2s.Connections()
		ms = append(ms,
			metric{"kontor_s2s_connections_inbound", "Open connections from other XMPP servers (federation).", "gauge", float64(in)},
			metric{"kontor_s2s_connections_outbound", "Open or opening connections to other XMPP servers (federation).", "gauge", float64(out)},
		)
	}
	if s.ws != nil {
		ms = append(ms,
			metric{"kontor_websocket_connections", "Open WebSocket connections (RFC 7395; also counted in kontor_c2s_connections once negotiating).", "gauge", float64(s.ws.Open())},
			metric{"kontor_bosh_sessions", "Open BOSH sessions (XEP-0206).", "gauge", float64(s.bosh.Open())},
		)
	}
	if s.archive != nil {
		st := s.archive.Stats()
		ms = append(ms,
			metric{"kontor_archive_queue_messages", "Messages waiting to be written to the archive.", "gauge", float64(st.Queued)},
			metric{"kontor_archive_queue_bytes", "Bytes of messages waiting to be written to the archive.", "gauge", float64(st.QueuedBytes)},
			metric{"kontor_archive_appended_total", "Messages the archive accepted.", "counter", float64(st.Appended)},
			metric{"kontor_archive_stored_total", "Messages written to the archive's store.", "counter", float64(st.Stored)},
			metric{"kontor_archive_refused_total", "Messages refused because the archive queue was full.", "counter", float64(st.Refused)},
			metric{"kontor_archive_expired_on_arrival_total", "Messages already past their retention when stored (dropped).", "counter", float64(st.ExpiredOnArrival)},
			metric{"kontor_archive_lost_total", "Messages given up at shutdown (should stay 0).", "counter", float64(st.Lost)},
			metric{"kontor_archive_flush_failures_total", "Failed attempts to write a batch (retried).", "counter", float64(st.FlushFailures)},
			metric{"kontor_archive_unreadable_total", "Archived rows a query could not open (skipped).", "counter", float64(st.Unreadable)},
			metric{"kontor_archive_purged_total", "Messages deleted by the retention purge.", "counter", float64(st.Purged)},
			metric{"kontor_archive_destroyed_keys_total", "Data keys destroyed by the purge (crypto-shredding).", "counter", float64(st.DestroyedKeys)},
			metric{"kontor_archive_cached_keys", "Data keys held open in memory.", "gauge", float64(st.CachedKeys)},
		)
	}
	for _, m := range ms {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", m.name, m.help, m.name, m.typ, m.name, m.value)
	}
}

// connectedComponents sums the connected components of every host whose
// component module runs (false when none does).
func (s *Server) connectedComponents() (int, bool) {
	n, any := 0, false
	for _, d := range s.router.Domains() {
		for _, m := range s.router.Host(d).Modules() {
			if c, ok := m.Module.(interface{ ConnectedComponents() int }); ok {
				n, any = n+c.ConnectedComponents(), true
			}
		}
	}
	return n, any
}
