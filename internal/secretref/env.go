package secretref

import "strings"

// ReplaceEnv returns env (NAME=VALUE entries) without the variables set
// assigns and those drop reports (drop may be nil), followed by set: the
// environment of a child that gets credentials (agentkeys run, the
// daemon's runs).
func ReplaceEnv(env []string, drop func(name string) bool, set []string) []string {
	assigned := make(map[string]bool, len(set))
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		assigned[k] = true
	}
	out := make([]string, 0, len(env)+len(set))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !assigned[k] && (drop == nil || !drop(k)) {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}
