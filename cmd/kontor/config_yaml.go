package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Limits on a configuration file, so that a broken or hostile file gets a
// clear error at once instead of a stall: YAML aliases can make a small
// file stand for an exponentially large one ("billion laughs"), which the
// YAML decoder only partly guards against.
const (
	maxConfigBytes  = 1 << 20
	maxConfigValues = 100_000 // after alias expansion; the defaults have ~500
)

// mergeConfigYAML checks data against the limits and merges it into v.
func mergeConfigYAML(v *viper.Viper, data []byte) error {
	if len(data) > maxConfigBytes {
		return fmt.Errorf("the file is %d bytes; a configuration may have at most %d", len(data), maxConfigBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if _, err := expandedSize(&doc, map[*yaml.Node]int{}); err != nil {
		return err
	}
	return v.MergeConfig(bytes.NewReader(data))
}

// inProgress marks a node whose size is being computed: an alias that
// reaches it refers to itself.
const inProgress = -1

// expandedSize counts the values n stands for once every alias is
// replaced by what it names, and refuses more than maxConfigValues or an
// alias that contains itself. Each anchored node is counted once (sizes
// memoises them), so the walk is linear in the file.
func expandedSize(n *yaml.Node, sizes map[*yaml.Node]int) (int, error) {
	if n == nil {
		return 0, nil
	}
	if n.Kind == yaml.AliasNode {
		return expandedSize(n.Alias, sizes)
	}
	switch s, ok := sizes[n]; {
	case ok && s == inProgress:
		return 0, fmt.Errorf("line %d: the alias to &%s is inside its own anchor", n.Line, n.Anchor)
	case ok:
		return s, nil
	}
	sizes[n] = inProgress
	total := 1
	for _, c := range n.Content {
		s, err := expandedSize(c, sizes)
		if err != nil {
			return 0, err
		}
		total += s
		if total > maxConfigValues {
			return 0, fmt.Errorf("line %d: the file stands for more than %d values once its YAML aliases are expanded", n.Line, maxConfigValues)
		}
	}
	sizes[n] = total
	return total, nil
}
