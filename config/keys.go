package config

// Keys lists every configuration key (each is also an environment variable of that name), in the
// order of Config's fields. Deployment files are checked against it (deploy_e2e_test.go).
func Keys() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}
