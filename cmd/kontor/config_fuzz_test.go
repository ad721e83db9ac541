package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

// FuzzLoadConfig feeds arbitrary YAML through the configuration path of
// every command after the file is read (viper over the defaults, the strict
// decoder with its hooks, module options, validation): it must never panic,
// and a configuration it accepts must validate again. The seed corpus
// (testdata/fuzz/FuzzLoadConfig) holds the defaults, typical operator files
// and broken ones.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(defaultYAML))
	f.Add([]byte("domains: [example.com]\nstorage:\n  backend: postgres\n  postgres_dsn: postgres://k@db/k\n"))
	f.Add([]byte("modules:\n  offline:\n    max_per_user: -1\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 16<<10 {
			return
		}
		v := viper.New()
		v.SetConfigType("yaml")
		if err := v.ReadConfig(strings.NewReader(defaultYAML)); err != nil {
			t.Fatal(err)
		}
		if err := mergeConfigYAML(v, data); err != nil {
			return
		}
		cfg, err := decodeConfig(v)
		if err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) && len(ce.Problems) == 0 {
				t.Fatalf("a ConfigError without problems for %q", data)
			}
			return
		}
		if p := cfg.validate(); len(p) > 0 {
			t.Fatalf("an accepted configuration does not validate again: %v\n%q", p, data)
		}
	})
}
