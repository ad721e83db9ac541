package main

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"kontor.im/kontor/core/jid"
	"kontor.im/kontor/core/mod/register"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/sasl"
	"kontor.im/kontor/ldapsync"
)

// Config is the whole configuration. Keys are snake_case and grouped by the
// component they configure; README.md's configuration reference documents
// each one.
type Config struct {
	// Domains are the virtual hosts served.
	Domains []string `mapstructure:"domains"`
	// DataDir holds the embedded database, the generated certificate and
	// the core sealing key.
	DataDir string        `mapstructure:"data_dir"`
	Log     LogConfig     `mapstructure:"log"`
	Storage StorageConfig `mapstructure:"storage"`
	TLS     TLSConfig     `mapstructure:"tls"`
	C2S     C2SConfig     `mapstructure:"c2s"`
	// S2S configures federation with other servers (cmd/kontor/s2s.go).
	S2S   S2SConfig   `mapstructure:"s2s"`
	Auth  AuthConfig  `mapstructure:"auth"`
	Admin AdminConfig `mapstructure:"admin"`
	HTTP  HTTPConfig  `mapstructure:"http"`
	Seal  SealConfig  `mapstructure:"seal"`
	// Registration configures in-band registration of new accounts
	// (XEP-0077), closed by default.
	Registration register.RegistrarOptions `mapstructure:"registration"`
	// Audit configures the audit trail's saved head (cmd/kontor/audit.go).
	Audit AuditConfig `mapstructure:"audit"`
	// Archive configures the encrypted message archive (cmd/kontor/archive.go).
	Archive ArchiveConfig `mapstructure:"archive"`
	// GDPR configures the data protection tooling (cmd/kontor/gdpr.go).
	GDPR GDPRConfig `mapstructure:"gdpr"`
	// Policy configures the policy engine (cmd/kontor/policy.go).
	Policy PolicyConfig `mapstructure:"policy"`
	// LDAP configures directory sync and login (cmd/kontor/ldap.go).
	LDAP ldapsync.Config `mapstructure:"ldap"`
	// Operators configures how the CLI knows its operator and dual control
	// (cmd/kontor/access.go).
	Operators OperatorsConfig `mapstructure:"operators"`
	// WorksCouncil switches monitoring-capable features on and off
	// (cmd/kontor/access.go, `kontor catalogue`).
	WorksCouncil WorksCouncilConfig `mapstructure:"works_council"`
	// Modules lists the enabled modules and holds each one's options.
	Modules ModulesConfig `mapstructure:"modules"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// GCMinHeap is the garbage collector's smallest heap goal in bytes
	// (gcfloor.go); 0: Go's default.
	GCMinHeap int64 `mapstructure:"gc_min_heap"`
	// AdaptiveProcs runs the scheduler on one processor while the load is
	// light (procs.go).
	AdaptiveProcs bool `mapstructure:"adaptive_procs"`
}

type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text or json
}

type StorageConfig struct {
	Backend     string `mapstructure:"backend"` // sqlite or postgres
	SQLitePath  string `mapstructure:"sqlite_path"`
	PostgresDSN string `mapstructure:"postgres_dsn"`
}

type TLSConfig struct {
	// CertFile and KeyFile are PEM files; when both are empty a
	// self-signed certificate for the domains is generated in DataDir.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

type C2SConfig struct {
	// StartTLSAddr and DirectTLSAddr are listen addresses ("" disables).
	StartTLSAddr        string        `mapstructure:"starttls_addr"`
	DirectTLSAddr       string        `mapstructure:"direct_tls_addr"`
	MaxStanzaBytes      int           `mapstructure:"max_stanza_bytes"`
	MaxDepth            int           `mapstructure:"max_depth"`
	MaxConnectionsPerIP int           `mapstructure:"max_connections_per_ip"`
	QueueSize           int           `mapstructure:"queue_size"`
	HandshakeTimeout    time.Duration `mapstructure:"handshake_timeout"`
	PingInterval        time.Duration `mapstructure:"ping_interval"`
	PingTimeout         time.Duration `mapstructure:"ping_timeout"`
	WriteTimeout        time.Duration `mapstructure:"write_timeout"`
	// Stream management (XEP-0198): how long a session whose connection
	// was lost can be resumed, and when the server asks for
	// acknowledgements (after this many unacknowledged stanzas, at most
	// once per SMAckInterval unless a quarter of queue_size is
	// unacknowledged, or after this long without writing while some are
	// unacknowledged).
	SMResumeTimeout time.Duration `mapstructure:"sm_resume_timeout"`
	SMAckEvery      int           `mapstructure:"sm_ack_every"`
	SMAckInterval   time.Duration `mapstructure:"sm_ack_interval"`
	SMAckIdle       time.Duration `mapstructure:"sm_ack_idle"`
	// CSIMaxHeldPresences bounds the presence updates held for an inactive
	// client (XEP-0352), latest per sender.
	CSIMaxHeldPresences int `mapstructure:"csi_max_held_presences"`
}

type AuthConfig struct {
	MaxFailuresPerIP         int           `mapstructure:"max_failures_per_ip"`
	MaxFailuresPerAccount    int           `mapstructure:"max_failures_per_account"`
	FailureWindow            time.Duration `mapstructure:"failure_window"`
	Backoff                  time.Duration `mapstructure:"backoff"`
	MaxBackoff               time.Duration `mapstructure:"max_backoff"`
	MaxAttemptsPerConnection int           `mapstructure:"max_attempts_per_connection"`
	// AccountWatchInterval is how often the server looks for accounts
	// disabled or deleted by `kontor user` (sessions close within it).
	AccountWatchInterval time.Duration `mapstructure:"account_watch_interval"`
	// SASL2 offers XEP-0388 with Bind 2 (XEP-0386); FAST offers XEP-0484
	// tokens with it, valid for FASTTokenLifetime.
	SASL2             bool          `mapstructure:"sasl2"`
	FAST              bool          `mapstructure:"fast"`
	FASTTokenLifetime time.Duration `mapstructure:"fast_token_lifetime"`
	// Mechanisms limits the SASL mechanisms offered ([]: all).
	Mechanisms []string `mapstructure:"mechanisms"`
}

type AdminConfig struct {
	// Addr serves /healthz and /metrics ("" disables). Keep it on
	// loopback or a management network.
	Addr string `mapstructure:"addr"`
	// PProf serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on the admin listener, for profiling under load.
	PProf bool `mapstructure:"pprof"`
}

type SealConfig struct {
	// KeyFile holds the key that seals offline messages; generated when
	// missing. Keep a backup apart from the database backups.
	KeyFile string `mapstructure:"key_file"`
}

type ModulesConfig struct {
	// Enabled lists module IDs; empty means every default module.
	Enabled []string `mapstructure:"enabled"`
	// Options holds each module's section, decoded into its typed options.
	Options map[string]any `mapstructure:",remain"`
}

//go:embed defaults.yaml
var defaultYAML string

// defaultConfig decodes the embedded defaults, the one place they are
// written.
func defaultConfig() Config {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(defaultYAML)); err != nil {
		panic("config: embedded defaults: " + err.Error())
	}
	var c Config
	if err := v.Unmarshal(&c, decoderOptions); err != nil {
		panic("config: embedded defaults: " + err.Error())
	}
	return c
}

func decoderOptions(dc *mapstructure.DecoderConfig) {
	dc.ErrorUnused = true
	dc.WeaklyTypedInput = false
	dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
		stringToNumberHook,
	)
}

// configFlags are the flags every command shares.
type configFlags struct {
	file    string
	dataDir string
	domains []string
}

func (f *configFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.file, "config", "c", "", "configuration file (default: ./kontor.yaml if it exists)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (overrides data_dir)")
	fs.StringSliceVar(&f.domains, "domain", nil, "domain to serve, repeatable (overrides domains)")
}

// ConfigError lists every problem found, each with its key path.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "configuration is invalid:\n  " + strings.Join(e.Problems, "\n  ")
}

// loadConfig reads defaults, then the file, then KONTOR_* environment
// variables (KONTOR_C2S_MAX_STANZA_BYTES for c2s.max_stanza_bytes), then
// flags, and validates the result.
func loadConfig(f configFlags) (Config, error) {
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(defaultYAML)); err != nil {
		return Config{}, err
	}
	v.SetEnvPrefix("KONTOR")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	file := f.file
	if file == "" {
		if _, err := os.Stat("kontor.yaml"); err == nil {
			file = "kontor.yaml"
		}
	}
	if env := os.Getenv("KONTOR_CONFIG"); file == "" && env != "" {
		file = env
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err == nil {
			err = mergeConfigYAML(v, data)
		}
		if err != nil {
			return Config{}, fmt.Errorf("config: reading %s: %w", file, err)
		}
	}
	if f.dataDir != "" {
		v.Set("data_dir", f.dataDir)
	}
	if len(f.domains) > 0 {
		v.Set("domains", f.domains)
	}
	return decodeConfig(v)
}

// decodeConfig decodes and validates what v holds.
func decodeConfig(v *viper.Viper) (Config, error) {
	var cfg Config
	var problems []string
	err := v.Unmarshal(&cfg, decoderOptions)
	if err != nil {
		problems = append(problems, splitDecodeError(err)...)
	}
	problems = append(problems, cfg.validate()...)
	if len(problems) > 0 {
		sort.Strings(problems)
		return cfg, &ConfigError{Problems: problems}
	}
	cfg.resolvePaths()
	return cfg, nil
}

// stringToNumberHook lets environment variables (always strings) set
// numbers, while a YAML string where a number belongs stays an error.
func stringToNumberHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || from.Kind() != reflect.String {
		return data, nil
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		if to == reflect.TypeOf(time.Duration(0)) {
			return data, nil
		}
		var n int64
		if _, err := fmt.Sscan(s, &n); err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return n, nil
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true", "1", "yes":
			return true, nil
		case "false", "0", "no":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not true or false", s)
	}
	return data, nil
}

// splitDecodeError turns mapstructure's joined errors into one line each.
func splitDecodeError(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, splitDecodeError(e)...)
		}
		return out
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		line = strings.TrimPrefix(line, "decoding failed due to the following error(s):")
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, rephrase(line)...)
		}
	}
	return out
}

var (
	invalidKeys = regexp.MustCompile(`^'([^']*)' has invalid keys: (.*)$`)
	quotedPath  = regexp.MustCompile(`^'([^']+)' (.*)$`)
)

// typePrefix is the Go type name mapstructure (v2.5 and later) puts in
// front of key paths ("main.Config.c2s"): users know keys, not types.
var typePrefix = regexp.MustCompile(`(^|')[a-z][a-z0-9_]*\.[A-Z][A-Za-z0-9]*(\.|')`)

// rephrase writes mapstructure's messages as "path: problem".
func rephrase(line string) []string {
	line = typePrefix.ReplaceAllStringFunc(line, func(m string) string {
		// Keep the quotes around what remains of the path.
		out := ""
		if strings.HasPrefix(m, "'") {
			out = "'"
		}
		if strings.HasSuffix(m, "'") {
			out += "'"
		}
		return out
	})
	if m := invalidKeys.FindStringSubmatch(line); m != nil {
		var out []string
		for _, k := range strings.Split(m[2], ", ") {
			path := k
			if m[1] != "" {
				path = m[1] + "." + k
			}
			out = append(out, path+": unknown key")
		}
		return out
	}
	if m := quotedPath.FindStringSubmatch(line); m != nil {
		return []string{m[1] + ": " + m[2]}
	}
	return []string{line}
}

func (c *Config) validate() []string {
	var p []string
	add := func(path, format string, args ...any) { p = append(p, path+": "+fmt.Sprintf(format, args...)) }
	if len(c.Domains) == 0 {
		add("domains", "at least one domain is required")
	}
	seen := map[string]bool{}
	for i, d := range c.Domains {
		j, err := jid.Parse(d)
		if err != nil || j.Local() != "" || !j.IsBare() {
			add(fmt.Sprintf("domains[%d]", i), "%q is not a valid domain", d)
			continue
		}
		if j.String() != d {
			add(fmt.Sprintf("domains[%d]", i), "%q is not in canonical form (write %q)", d, j.String())
		}
		if seen[d] {
			add(fmt.Sprintf("domains[%d]", i), "%q is listed twice", d)
		}
		seen[d] = true
	}
	if c.DataDir == "" {
		add("data_dir", "must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		add("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Storage.Backend {
	case "sqlite":
	case "postgres":
		if c.Storage.PostgresDSN == "" {
			add("storage.postgres_dsn", "required when storage.backend is postgres")
		}
	default:
		add("storage.backend", "%q is not sqlite or postgres", c.Storage.Backend)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls", "cert_file and key_file go together")
	}
	for path, f := range map[string]string{"tls.cert_file": c.TLS.CertFile, "tls.key_file": c.TLS.KeyFile} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				add(path, "%v", err)
			}
		}
	}
	for path, a := range map[string]string{"c2s.starttls_addr": c.C2S.StartTLSAddr, "c2s.direct_tls_addr": c.C2S.DirectTLSAddr, "admin.addr": c.Admin.Addr, "http.addr": c.HTTP.Addr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			add(path, "%q is not host:port", a)
		}
	}
	if u := c.HTTP.PublicURL; u != "" && (!strings.HasPrefix(u, "https://") || len(u) == len("https://")) {
		add("http.public_url", "%q must be an https:// URL", u)
	}
	if c.C2S.StartTLSAddr == "" && c.C2S.DirectTLSAddr == "" {
		add("c2s", "starttls_addr and direct_tls_addr are both empty: clients could not connect")
	}
	positive := []struct {
		path string
		n    int64
		min  int64
	}{
		{"c2s.max_stanza_bytes", int64(c.C2S.MaxStanzaBytes), 10000},
		{"c2s.max_depth", int64(c.C2S.MaxDepth), 8},
		{"c2s.max_connections_per_ip", int64(c.C2S.MaxConnectionsPerIP), 0},
		{"c2s.queue_size", int64(c.C2S.QueueSize), 16},
		{"c2s.handshake_timeout", int64(c.C2S.HandshakeTimeout), int64(time.Second)},
		{"c2s.ping_interval", int64(c.C2S.PingInterval), int64(time.Second)},
		{"c2s.ping_timeout", int64(c.C2S.PingTimeout), int64(time.Second)},
		{"c2s.write_timeout", int64(c.C2S.WriteTimeout), int64(time.Second)},
		{"c2s.sm_resume_timeout", int64(c.C2S.SMResumeTimeout), int64(time.Second)},
		{"c2s.sm_ack_every", int64(c.C2S.SMAckEvery), 1},
		{"c2s.sm_ack_interval", int64(c.C2S.SMAckInterval), 0},
		{"c2s.csi_max_held_presences", int64(c.C2S.CSIMaxHeldPresences), 1},
		{"http.max_websockets", int64(c.HTTP.MaxWebSockets), 0},
		{"http.read_header_timeout", int64(c.HTTP.ReadHeaderTimeout), int64(time.Second)},
		{"http.bosh_max_sessions", int64(c.HTTP.BOSHMaxSessions), 0},
		{"http.bosh_max_wait", int64(c.HTTP.BOSHMaxWait), int64(time.Second)},
		{"http.bosh_max_hold", int64(c.HTTP.BOSHMaxHold), 1},
		{"http.bosh_inactivity", int64(c.HTTP.BOSHInactivity), int64(time.Second)},
		{"auth.max_failures_per_ip", int64(c.Auth.MaxFailuresPerIP), 1},
		{"auth.max_failures_per_account", int64(c.Auth.MaxFailuresPerAccount), 1},
		{"auth.failure_window", int64(c.Auth.FailureWindow), int64(time.Second)},
		{"auth.backoff", int64(c.Auth.Backoff), int64(time.Millisecond)},
		{"auth.max_backoff", int64(c.Auth.MaxBackoff), int64(c.Auth.Backoff)},
		{"auth.max_attempts_per_connection", int64(c.Auth.MaxAttemptsPerConnection), 1},
		{"auth.account_watch_interval", int64(c.Auth.AccountWatchInterval), int64(100 * time.Millisecond)},
		{"shutdown_timeout", int64(c.ShutdownTimeout), int64(time.Second)},
		{"gc_min_heap", c.GCMinHeap, 0},
	}
	for _, x := range positive {
		if x.n < x.min {
			add(x.path, "must be at least %v", formatMin(x.path, x.min))
		}
	}
	if c.C2S.SMResumeTimeout > time.Hour {
		add("c2s.sm_resume_timeout", "must be at most 1h (a detached session stays online and holds its queue)")
	}
	if c.C2S.SMAckEvery > c.C2S.QueueSize/2 && c.C2S.QueueSize >= 16 {
		add("c2s.sm_ack_every", "must be at most half of queue_size (%d)", c.C2S.QueueSize/2)
	}
	if c.C2S.SMAckInterval > time.Minute {
		add("c2s.sm_ack_interval", "must be at most 1m (a busy stream's unacknowledged stanzas are held that long)")
	}
	if c.C2S.SMAckIdle < 100*time.Millisecond {
		add("c2s.sm_ack_idle", "must be at least 100ms")
	}
	if c.Auth.FAST && (c.Auth.FASTTokenLifetime < time.Hour || c.Auth.FASTTokenLifetime > 365*24*time.Hour) {
		add("auth.fast_token_lifetime", "must be between 1h and 8760h (a year)")
	}
	for _, m := range c.Auth.Mechanisms {
		if !slices.Contains(sasl.AllMechanisms, m) {
			add("auth.mechanisms", "unknown mechanism %q (known: %s)", m, strings.Join(sasl.AllMechanisms, ", "))
		}
	}
	if c.Auth.FAST && !c.Auth.SASL2 {
		add("auth.fast", "needs auth.sasl2: FAST tokens are used through SASL2")
	}
	if c.Auth.AccountWatchInterval > 5*time.Second {
		add("auth.account_watch_interval", "must be at most 5s (disabled users' sessions must close within 5 seconds)")
	}
	if err := c.Registration.Validate(); err != nil {
		add("registration", "%s", strings.TrimPrefix(err.Error(), "register: "))
	}
	p = append(p, c.Audit.validate()...)
	p = append(p, c.S2S.validate()...)
	p = append(p, c.Archive.validate(c.DataDir)...)
	p = append(p, c.GDPR.validate(c.DataDir)...)
	p = append(p, c.Policy.validate(c)...)
	p = append(p, c.LDAP.Validate(c.Domains)...)
	p = append(p, c.Operators.validate()...)
	p = append(p, c.validateModules()...)
	return p
}

func formatMin(path string, n int64) string {
	if strings.Contains(path, "timeout") || strings.Contains(path, "interval") || strings.Contains(path, "backoff") || strings.Contains(path, "window") {
		return time.Duration(n).String()
	}
	return fmt.Sprint(n)
}

// enabledModules returns the IDs of the enabled modules in order.
func (c *Config) enabledModules() []string {
	if len(c.Modules.Enabled) > 0 {
		return c.Modules.Enabled
	}
	var ids []string
	for _, info := range module.All() {
		if info.Default {
			ids = append(ids, info.ID)
		}
	}
	return ids
}

// validateModules checks the module list and decodes every module's
// options, so that a typo in a module section is found before start.
func (c *Config) validateModules() []string {
	var p []string
	ids := c.enabledModules()
	on := map[string]bool{}
	for i, id := range ids {
		if _, ok := module.Lookup(id); !ok {
			p = append(p, fmt.Sprintf("modules.enabled[%d]: unknown module %q (see `kontor modules`)", i, id))
		}
		on[id] = true
	}
	for _, id := range ids {
		info, ok := module.Lookup(id)
		if !ok {
			continue
		}
		for _, req := range info.Requires {
			if !on[req] {
				p = append(p, fmt.Sprintf("modules.enabled: %s requires %s", id, req))
			}
		}
	}
	for key := range c.Modules.Options {
		if _, ok := module.Lookup(key); !ok {
			p = append(p, fmt.Sprintf("modules.%s: unknown module", key))
		}
	}
	for _, id := range ids {
		info, ok := module.Lookup(id)
		if !ok {
			continue
		}
		if _, err := c.newModule(info); err != nil {
			p = append(p, err.Error())
		}
	}
	return p
}

// newModule builds a module instance with its options decoded from the
// configuration (unknown keys are errors) and validated.
func (c *Config) newModule(info module.Info) (module.Module, error) {
	m := info.New()
	raw, has := c.Modules.Options[info.ID]
	cm, configurable := m.(module.Configurable)
	if !configurable {
		if has {
			return nil, fmt.Errorf("modules.%s: this module has no options", info.ID)
		}
		return m, nil
	}
	opts := cm.Options()
	if has {
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			Result:      opts,
			ErrorUnused: true,
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				mapstructure.StringToTimeDurationHookFunc(),
				mapstructure.StringToSliceHookFunc(","),
				stringToNumberHook,
			),
		})
		if err != nil {
			return nil, err
		}
		if err := dec.Decode(raw); err != nil {
			var lines []string
			for _, l := range splitDecodeError(err) {
				lines = append(lines, "modules."+info.ID+": "+l)
			}
			return nil, errors.New(strings.Join(lines, "\n  "))
		}
	}
	if v, ok := opts.(module.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("modules.%s: %v", info.ID, err)
		}
	}
	return m, nil
}

func (c *Config) resolvePaths() {
	if c.Storage.SQLitePath == "" {
		c.Storage.SQLitePath = filepath.Join(c.DataDir, "kontor.db")
	}
	if c.Seal.KeyFile == "" {
		c.Seal.KeyFile = filepath.Join(c.DataDir, "keys", "core.key")
	}
}
