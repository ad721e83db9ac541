package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"kontor.im/kontor/core/directory"
	"kontor.im/kontor/core/mod/muc"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/core/account"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/bosh"
	"kontor.im/kontor/core/gate"
	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/limit"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/router"
	"kontor.im/kontor/core/s2s"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/core/seal"
	"kontor.im/kontor/core/session"
	"kontor.im/kontor/core/stanza"
	"kontor.im/kontor/core/storage"
	"kontor.im/kontor/core/websocket"
	"kontor.im/kontor/core/xmlstream"
	"kontor.im/kontor/policy"
)

// Server is a running Kontor: store, router, listeners. Tests start it in
// process with the same code path as `kontor serve`.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  storage.Store
	router *router.Router
	c2s    *session.Server
	// s2s is federation (cmd/kontor/s2s.go), nil when it is off.
	s2s   *s2s.Service
	admin *http.Server
	// https is the HTTPS listener (WebSocket, discovery, module
	// handlers); nil when it is off.
	https   *http.Server
	httpsLn net.Listener
	ws      *websocket.Handler
	bosh    *bosh.Handler
	// audit is the audit trail (an audit.Log) that features append to.
	audit *audit.Trail
	// archive is the encrypted message archive, nil when it is off.
	archive *archive.Archive
	// policy is the policy engine (gate.Decider, directory.Sink).
	policy *policy.Engine
	// ldap is directory sync and login, nil when it is off.
	ldap *ldapRuntime

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// Addrs are the bound listen addresses by name ("starttls",
	// "direct_tls", "https", "admin").
	Addrs map[string]net.Addr
	// TLSInfo describes the certificate in use.
	TLSInfo string
}

// deriveKey derives a purpose-bound secret from the server key.
func deriveKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// accountCloser closes sessions of disabled or deleted accounts.
type accountCloser struct{ r *router.Router }

func (a accountCloser) CloseAccount(bare jid.JID, before, incarnation time.Time) int {
	return a.r.CloseAccount(bare, router.Revocation{Before: before, Incarnation: incarnation}, &stanza.StreamError{Condition: stanza.StreamNotAuthorized, Text: "this account has been disabled or deleted"})
}

// startServer builds everything from the configuration and starts
// listening. Nothing is left running when it returns an error.
func startServer(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	s := &Server{cfg: cfg, log: log, Addrs: map[string]net.Addr{}}
	defer func() {
		if err != nil {
			s.Shutdown(context.Background())
		}
	}()
	if s.store, err = openStore(ctx, &cfg); err != nil {
		return nil, err
	}
	if s.audit, err = newServerTrail(&cfg, s.store, log.With("component", "audit")); err != nil {
		return nil, err
	}
	// Erasures a restored backup undid come back before anything is served.
	if err := replayErasuresAtStart(ctx, &cfg, s.store, s.audit, log.With("component", "gdpr")); err != nil {
		return nil, err
	}
	if s.policy, err = newPolicyEngine(ctx, &cfg, s.audit, log.With("component", "policy")); err != nil {
		return nil, err
	}
	key, err := seal.LoadOrCreateKey(cfg.Seal.KeyFile)
	if err != nil {
		return nil, err
	}
	sealer, err := seal.New(key)
	if err != nil {
		return nil, err
	}
	// routed is the router, for the archive's retention decisions (the
	// archive starts first).
	var routed atomic.Pointer[router.Router]
	if cfg.Archive.Enabled {
		// The policy decides each message's retention class.
		retention := policyRetention{d: s.policy, isLocal: func(d string) bool { return slices.Contains(cfg.Domains, d) },
			// Called by the archive's flusher, once the router exists.
			isRoom: func(d string) bool { r := routed.Load(); return r != nil && r.ServedBy(d) == muc.ID }}
		var trail audit.Log
		if s.audit != nil {
			trail = s.audit
		}
		if s.archive, err = startArchive(ctx, &cfg, s.store, retention, trail, log.With("component", "archive")); err != nil {
			return nil, err
		}
	}
	// With the archive on, offline messages are sealed with its per-owner
	// data keys too (what the core sealer sealed before still opens).
	archived, msgSealer := archiveWiring(s.archive, sealer)
	if err := s.listenHTTPS(&cfg); err != nil {
		return nil, err
	}
	tlsConf, desc, err := tlsConfig(&cfg)
	if err != nil {
		return nil, err
	}
	s.TLSInfo = desc
	var remote router.Remote
	if s.s2s, err = newS2S(&cfg, tlsConf, log.With("component", "s2s")); err != nil {
		return nil, err
	} else if s.s2s != nil {
		remote = s.s2s
	}
	s.router = router.New(router.Config{Logger: log.With("component", "router"), Store: s.store, Sealer: msgSealer, Archive: archived,
		HTTPBaseURL: s.httpBaseURL(&cfg), Remote: remote, BindWithin: cfg.C2S.HandshakeTimeout})
	if s.s2s != nil {
		s.s2s.SetRouter(s.router)
	}
	defer routed.Store(s.router)
	// The policy engine and the modules that follow the directory.
	sinks := directorySinks{s.policy}
	for _, d := range cfg.Domains {
		var mods []router.Enabled
		for _, id := range cfg.enabledModules() {
			info, _ := module.Lookup(id)
			m, err := cfg.newModule(info)
			if err != nil {
				return nil, err
			}
			if g, ok := m.(interface{ SetDecider(gate.Decider) }); ok {
				g.SetDecider(s.policy)
			}
			if a, ok := m.(interface{ SetAuditLog(audit.Log) }); ok && s.audit != nil {
				a.SetAuditLog(s.audit)
			}
			if d, ok := m.(interface{ SetDataDir(string) }); ok {
				d.SetDataDir(cfg.DataDir)
			}
			if ds, ok := m.(directory.Sink); ok {
				sinks = append(sinks, ds)
			}
			mods = append(mods, router.Enabled{Info: info, Module: m})
		}
		if _, err := s.router.AddHost(jid.MustParse(d), mods); err != nil {
			return nil, err
		}
	}
	store := s.store
	reg, err := registrar(&cfg, s.store, gate.RegistrationGate{Decider: s.policy}, log)
	if err != nil {
		return nil, err
	}
	// One guard for core/session and the directory's authenticator, which
	// consults it before it binds (lockout safety, see ldapsync).
	authGuard := limit.NewAuth(limit.AuthConfig{
		MaxPerIP: cfg.Auth.MaxFailuresPerIP, MaxPerAccount: cfg.Auth.MaxFailuresPerAccount,
		Window: cfg.Auth.FailureWindow, Backoff: cfg.Auth.Backoff, MaxBackoff: cfg.Auth.MaxBackoff,
	})
	if cfg.LDAP.Enabled {
		var trail audit.Log
		if s.audit != nil {
			trail = s.audit
		}
		if s.ldap, err = startLDAP(&cfg, s.store, s.router, authGuard, sinks, trail, log.With("component", "ldap")); err != nil {
			return nil, err
		}
	}
	ldapRT := s.ldap
	var stored func() <-chan struct{}
	if s.archive != nil {
		// Stream management acknowledges messages only once they are in
		// the archive (the durability promise, SECURITY.md).
		stored = s.archive.Stored
	}
	s.c2s = session.NewServer(session.Config{
		Stored: stored,
		Router: s.router,
		Auth: func(domain string) sasl.Authenticator {
			if a := ldapRT.authenticator(domain); a != nil {
				return a
			}
			return account.Authenticator{Store: store, Domain: domain, Log: log.With("component", "auth")}
		},
		TLS:              tlsConf,
		Logger:           log.With("component", "c2s"),
		Limits:           xmlstream.Limits{MaxStanzaBytes: cfg.C2S.MaxStanzaBytes, MaxDepth: cfg.C2S.MaxDepth},
		QueueSize:        cfg.C2S.QueueSize,
		HandshakeTimeout: cfg.C2S.HandshakeTimeout,
		PingInterval:     cfg.C2S.PingInterval,
		PingTimeout:      cfg.C2S.PingTimeout,
		WriteTimeout:     cfg.C2S.WriteTimeout,
		ResumeTimeout:    cfg.C2S.SMResumeTimeout,
		AckEvery:         cfg.C2S.SMAckEvery,
		AckIdle:          cfg.C2S.SMAckIdle,
		AckInterval:      ackInterval(cfg.C2S.SMAckInterval),
		MaxHeldPresences: cfg.C2S.CSIMaxHeldPresences,
		MaxAuthAttempts:  cfg.Auth.MaxAttemptsPerConnection,
		Conns:            limit.NewConns(cfg.C2S.MaxConnectionsPerIP),
		AuthGuard:        authGuard,
		// The secret behind unknown users' simulated SCRAM salts must
		// outlive restarts and be the same on every node, or the salt
		// would change and give away that the account does not exist.
		SASL:         []sasl.Option{sasl.WithSecret(deriveKey(key, "kontor sasl simulated credentials")), sasl.WithIterations(account.Iterations)},
		Registration: reg,
		DisableSASL2: !cfg.Auth.SASL2,
		Mechanisms:   cfg.Auth.Mechanisms,
		FAST:         fastTokens(&cfg, s.store, key),
	})
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		checkAuditTrail(bg, s.audit, log.With("component", "audit"))
	}()
	if s.ldap != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.ldap.syncer.Run(bg)
		}()
	}
	for _, l := range []struct {
		name   string
		addr   string
		direct bool
	}{{"starttls", cfg.C2S.StartTLSAddr, false}, {"direct_tls", cfg.C2S.DirectTLSAddr, true}} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return nil, fmt.Errorf("c2s: %w", err)
		}
		s.Addrs[l.name] = ln.Addr()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.c2s.Serve(ln, l.direct); err != nil && !errors.Is(err, session.ErrServerClosed) {
				log.Error("c2s listener stopped", "listener", l.name, "err", err)
			}
		}()
	}
	if s.s2s != nil {
		for _, l := range []struct {
			name   string
			addr   string
			direct bool
		}{{"s2s", cfg.S2S.Addr, false}, {"s2s_direct_tls", cfg.S2S.DirectTLSAddr, true}} {
			if l.addr == "" {
				continue
			}
			ln, err := net.Listen("tcp", l.addr)
			if err != nil {
				return nil, fmt.Errorf("s2s: %w", err)
			}
			s.Addrs[l.name] = ln.Addr()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				if err := s.s2s.Serve(ln, l.direct); err != nil && !errors.Is(err, s2s.ErrServerClosed) {
					log.Error("s2s listener stopped", "listener", l.name, "err", err)
				}
			}()
		}
	}
	s.startHTTPS(&cfg, tlsConf, log.With("component", "https"))
	if cfg.Admin.Addr != "" {
		ln, err := net.Listen("tcp", cfg.Admin.Addr)
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		s.Addrs["admin"] = ln.Addr()
		s.admin = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener stopped", "err", err)
			}
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := account.Watch(bg, s.store, accountCloser{s.router}, cfg.Auth.AccountWatchInterval, log.With("component", "accounts")); err != nil {
			log.Error("account watcher stopped", "err", err)
		}
	}()
	return s, nil
}

// Shutdown stops accepting, closes every session with system-shutdown,
// stops the modules and closes the store, within ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if s.c2s != nil {
		errs = append(errs, s.c2s.Shutdown(ctx))
	}
	if s.s2s != nil {
		errs = append(errs, s.s2s.Shutdown(ctx))
	}
	if s.https != nil {
		// Upgraded WebSockets belong to c2s, closed above.
		errs = append(errs, s.https.Shutdown(ctx))
	} else if s.httpsLn != nil {
		s.httpsLn.Close()
	}
	if s.admin != nil {
		errs = append(errs, s.admin.Shutdown(ctx))
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.ldap != nil {
		// The scheduler has stopped (wg): no sync uses the connections.
		errs = append(errs, s.ldap.client.Close())
	}
	if s.router != nil {
		errs = append(errs, s.router.Stop(ctx))
	}
	if s.archive != nil {
		// After the modules stopped: nothing appends any more. Stores what
		// is queued.
		errs = append(errs, s.archive.Close(ctx))
	}
	if s.policy != nil {
		// After the modules: no decision is asked any more.
		errs = append(errs, s.policy.Close())
	}
	if s.audit != nil {
		// Saves the head; a tampered trail is logged, not a failed stop.
		if err := s.audit.Close(ctx); err != nil {
			s.log.Error("audit trail head not saved", "err", err)
		}
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
}

// adminHandler serves the admin listener. /healthz and /metrics are open
// (load balancers and Prometheus scrape them; they reveal counts, never
// names); every mutating endpoint wants an operator's token as a bearer
// token and is an access-policy action (see adminOperator).
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if _, err := s.store.SchemaVersion(ctx); err != nil {
			http.Error(w, "storage unavailable", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	s.ldapAdminRoutes(mux) // POST /ldap/sync[?full=1]
	if s.cfg.Admin.PProf {
		// Profiles show code paths and sizes, never stanza contents; the
		// listener is private (see admin.addr).
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("POST /policy/reload", s.adminOperator(gate.AccessAdminPolicyReload, func(w http.ResponseWriter, r *http.Request) {
		// The new policy is built whole and swapped in atomically; a
		// broken one is refused and the running one stays (DESIGN.md).
		if err := s.policy.Reload(r.Context(), "admin-api"); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		io.WriteString(w, "policy reloaded\n")
	}))
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.writeMetrics(w)
	})
	return mux
}

// clientPort is the port a client should be told to use: the STARTTLS
// listener's, else the direct TLS one's ("" when neither listens).
func clientPort(addrs map[string]net.Addr) string {
	for _, k := range []string{"starttls", "direct_tls"} {
		if a, ok := addrs[k]; ok && a != nil {
			if _, port, err := net.SplitHostPort(a.String()); err == nil {
				return port
			}
		}
	}
	return ""
}

// banner tells the operator what is running and what to do next.
func (s *Server) banner(w io.Writer, cfgFile string) {
	fmt.Fprintf(w, "Kontor is running for %s\n", strings.Join(s.cfg.Domains, ", "))
	for _, n := range []struct{ key, what string }{{"starttls", "XMPP clients (STARTTLS)"}, {"direct_tls", "XMPP clients (direct TLS, XEP-0368)"}, {"https", "browser clients, HTTPS (WebSocket, BOSH)"}, {"s2s", "other XMPP servers (federation)"}, {"s2s_direct_tls", "other XMPP servers (direct TLS)"}, {"admin", "health and metrics (HTTP)"}} {
		if a, ok := s.Addrs[n.key]; ok {
			fmt.Fprintf(w, "  %-38s %s\n", n.what, a)
		}
	}
	switch s.cfg.Storage.Backend {
	case "sqlite":
		fmt.Fprintf(w, "  %-38s %s\n", "storage (embedded SQLite)", s.cfg.Storage.SQLitePath)
	default:
		fmt.Fprintf(w, "  %-38s %s\n", "storage", "PostgreSQL")
	}
	fmt.Fprintf(w, "  %-38s %s\n", "TLS", s.TLSInfo)
	cfgArg := ""
	if cfgFile != "" {
		cfgArg = " --config " + cfgFile
	} else if s.cfg.DataDir != "kontor-data" {
		cfgArg = " --data-dir " + s.cfg.DataDir
	}
	fmt.Fprintf(w, "\nAdd a user (in another terminal, while this runs):\n  go run ./cmd/kontor user add%s alice@%s\n", cfgArg, s.cfg.Domains[0])
	fmt.Fprintf(w, "Then connect any XMPP client (Conversations, Gajim, Dino, Profanity) as alice@%s;\n", s.cfg.Domains[0])
	if port := clientPort(s.Addrs); port != "" {
		fmt.Fprintf(w, "if the domain does not resolve to this machine, set the client's host to this machine's address and port %s.\n", port)
	}
	fmt.Fprintf(w, "Stop with Ctrl-C (graceful: clients get system-shutdown).\n")
}

// ackInterval is c2s.sm_ack_interval for session.Config, where 0 means
// the default and a negative value none.
func ackInterval(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
