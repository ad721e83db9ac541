package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kontor.im/kontor/archive"
	"kontor.im/kontor/archive/gdpr"
	"kontor.im/kontor/archive/keyring"
	"kontor.im/kontor/core/audit"
	"kontor.im/kontor/core/module"
	"kontor.im/kontor/core/storage"
)

// ArchiveConfig is the `archive:` section: the encrypted message archive.
// It is off by default, so that a zero-config start stays zero-config.
type ArchiveConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// KEKFile is the key file `kontor keys init` creates; KEKEnv names an
	// environment variable holding the key ring instead. Exactly one is
	// required when the archive is enabled.
	KEKFile string `mapstructure:"kek_file"`
	KEKEnv  string `mapstructure:"kek_env"`
	// DefaultRetentionDays is how long messages are kept unless the policy
	// decides otherwise; 0 keeps them forever.
	DefaultRetentionDays int           `mapstructure:"default_retention_days"`
	QueueSize            int           `mapstructure:"queue_size"`
	QueueBytes           int           `mapstructure:"queue_bytes"`
	BatchSize            int           `mapstructure:"batch_size"`
	FlushInterval        time.Duration `mapstructure:"flush_interval"`
	// AckLinger: after a stream management ack request asked for what is
	// queued to be stored, the flusher gathers more for this long, so that
	// many acks share one transaction; 0 stores at once.
	AckLinger time.Duration `mapstructure:"ack_linger"`
	// WhenFull is block (wait, lose nothing) or refuse (the sender gets an
	// error).
	WhenFull      string        `mapstructure:"when_full"`
	PurgeInterval time.Duration `mapstructure:"purge_interval"`
	KeyCacheSize  int           `mapstructure:"key_cache_size"`
	// PrefsCacheSize bounds the owners whose archiving preferences
	// (XEP-0441) are held in memory.
	PrefsCacheSize int `mapstructure:"prefs_cache_size"`
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// validate lists the problems of the section. Whether the key file exists
// is checked when the server starts (and `kontor keys init` must be able to
// run before it does).
func (a *ArchiveConfig) validate(dataDir string) []string {
	var p []string
	add := func(path, format string, args ...any) {
		p = append(p, "archive."+path+": "+fmt.Sprintf(format, args...))
	}
	if a.KEKFile != "" && a.KEKEnv != "" {
		add("kek_file", "set kek_file or kek_env, not both")
	}
	if a.Enabled && a.KEKFile == "" && a.KEKEnv == "" {
		add("kek_file", "the archive is enabled but has no key-encryption key: run `kontor keys init --file PATH` and set kek_file to PATH (or set kek_env)")
	}
	if a.KEKFile != "" && dataDir != "" && inside(a.KEKFile, dataDir) {
		add("kek_file", "%s is inside data_dir: the key must not be stored beside the data it protects (a backup of one must not contain the other)", a.KEKFile)
	}
	if a.KEKEnv != "" && !envName.MatchString(a.KEKEnv) {
		add("kek_env", "%q is not an environment variable name", a.KEKEnv)
	}
	switch a.WhenFull {
	case "block", "refuse":
	default:
		add("when_full", "%q is not block or refuse", a.WhenFull)
	}
	bounds := []struct {
		path      string
		n, lo, hi int64
	}{
		{"default_retention_days", int64(a.DefaultRetentionDays), 0, 365 * 100},
		{"queue_size", int64(a.QueueSize), 100, 10_000_000},
		{"queue_bytes", int64(a.QueueBytes), 1 << 20, 1 << 40},
		{"batch_size", int64(a.BatchSize), 1, 10_000},
		{"flush_interval", int64(a.FlushInterval), int64(time.Millisecond), int64(time.Minute)},
		{"ack_linger", int64(a.AckLinger), 0, int64(time.Second)},
		{"key_cache_size", int64(a.KeyCacheSize), 100, 10_000_000},
		{"prefs_cache_size", int64(a.PrefsCacheSize), 100, 10_000_000},
	}
	for _, b := range bounds {
		if b.n < b.lo || b.n > b.hi {
			if strings.HasSuffix(b.path, "interval") || b.path == "ack_linger" {
				add(b.path, "must be between %v and %v", time.Duration(b.lo), time.Duration(b.hi))
			} else {
				add(b.path, "must be between %d and %d", b.lo, b.hi)
			}
		}
	}
	if a.PurgeInterval != 0 && a.PurgeInterval < time.Minute {
		add("purge_interval", "must be 0 (no periodic purge) or at least 1m")
	}
	return p
}

// inside reports whether path lies in dir (or is dir).
func inside(path, dir string) bool {
	ap, err1 := filepath.Abs(path)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// kekProvider returns the key provider the configuration names.
func (a *ArchiveConfig) kekProvider() (keyring.Provider, error) {
	switch {
	case a.KEKFile != "":
		f, err := keyring.OpenFile(a.KEKFile)
		if err != nil {
			return nil, fmt.Errorf("archive: key-encryption key: %w (create one with `kontor keys init`)", err)
		}
		return f, nil
	case a.KEKEnv != "":
		r, err := keyring.Env(a.KEKEnv)
		if err != nil {
			return nil, fmt.Errorf("archive: key-encryption key: %w", err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("archive: no key-encryption key configured (archive.kek_file or archive.kek_env); create one with `kontor keys init`")
}

// archiveStore returns the store's archive tables.
func archiveStore(st storage.Store) (storage.ArchiveStore, error) {
	as, ok := st.(storage.ArchiveStore)
	if !ok {
		return nil, fmt.Errorf("archive: the %s backend has no archive tables", st.Backend())
	}
	return as, nil
}

// startArchive builds and starts the archive. It refuses to start without
// a usable key-encryption key.
func startArchive(ctx context.Context, cfg *Config, st storage.Store, retention archive.RetentionDecider, trail audit.Log, log *slog.Logger) (*archive.Archive, error) {
	as, err := archiveStore(st)
	if err != nil {
		return nil, err
	}
	keys, err := cfg.Archive.kekProvider()
	if err != nil {
		return nil, err
	}
	opts := archiveOptions(cfg, as, keys, log)
	opts.Retention = retention
	if trail != nil {
		opts.Audit = trail
	}
	a, err := archive.New(opts)
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func archiveOptions(cfg *Config, as storage.ArchiveStore, keys keyring.Provider, log *slog.Logger) archive.Config {
	c := cfg.Archive
	full := archive.Block
	if c.WhenFull == "refuse" {
		full = archive.Refuse
	}
	keep := time.Duration(c.DefaultRetentionDays) * 24 * time.Hour
	var holds archive.HoldChecker
	if gs, ok := as.(storage.GDPRStore); ok { // both backends: purge skips owners on legal hold
		holds = gdpr.Holds{Store: gs}
	}
	return archive.Config{
		Holds: holds,
		Store: as, Keys: keys, Logger: log,
		// Used when no retention decider is set (commands other than
		// serve) and when a decision fails: the message is kept, never
		// dropped.
		DefaultRetention: archive.RetentionClass{Name: archive.DefaultClassName, Keep: keep},
		QueueSize:        c.QueueSize, QueueBytes: c.QueueBytes, BatchSize: c.BatchSize,
		FlushInterval: c.FlushInterval, AckLinger: ackLinger(c.AckLinger), WhenFull: full, PurgeInterval: c.PurgeInterval,
		KeyCacheSize: c.KeyCacheSize, PrefsCacheSize: c.PrefsCacheSize,
	}
}

// archiveWiring returns what the router gets: the archive (nil when off)
// and the sealer for offline messages, the archive's envelope encryption
// when it is on (still opening what the core sealer sealed before).
func archiveWiring(a *archive.Archive, core module.Sealer) (module.Archive, module.Sealer) {
	if a == nil {
		return nil, core
	}
	return a, a.Sealer(core)
}

func init() { featureCommands = append(featureCommands, archiveCmd) }

func archiveCmd(flags *configFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "archive", Short: "Maintain the encrypted message archive"}
	cmd.AddCommand(&cobra.Command{
		Use:   "purge",
		Short: "Delete expired messages now and destroy the data keys of fully expired months",
		Long: "Runs the retention purge once (the server also runs it every archive.purge_interval):\n" +
			"expired messages are deleted in batches, owners on legal hold are skipped, and a data key\n" +
			"whose messages have all expired and are gone is destroyed (crypto-shredding).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(*flags)
			if err != nil {
				return err
			}
			st, err := openStore(cmd.Context(), &cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			as, err := archiveStore(st)
			if err != nil {
				return err
			}
			keys, err := cfg.Archive.kekProvider()
			if err != nil {
				return err
			}
			a, err := archive.New(archiveOptions(&cfg, as, keys, newLogger(&cfg, cmd.ErrOrStderr())))
			if err != nil {
				return err
			}
			start := time.Now()
			res, err := a.Purge(cmd.Context())
			if err == nil {
				e := archive.PurgeAuditEntry(res, time.Since(start))
				if err := auditFromCLI(cmd.Context(), &cfg, st, cmd, e); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "purged %d messages, destroyed %d data keys; skipped %d owners on hold (%d whose hold check failed)\n",
				res.Messages, res.Keys, res.HeldOwners, res.HoldErrored)
			return err
		},
	})
	return cmd
}

// ackLinger maps the configured linger (0: none) to archive.Config's
// (0: the default, negative: none).
func ackLinger(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
