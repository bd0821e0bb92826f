package config

import "fmt"

// Error is a configuration value that cannot be used. Value is what was given, with secrets
// already masked, so an Error is always safe to print.
type Error struct {
	Key     string // the environment variable name, such as PORT
	Value   string // the offending value; "***" for a secret, credentials masked in MONGO_URI
	Allowed string // what the key accepts, such as "must be an integer 0-65535"
}

// Error returns one line: config: PORT="abc" is invalid: must be an integer 0-65535.
func (e *Error) Error() string {
	return fmt.Sprintf("config: %s=%q is invalid: %s", e.Key, e.Value, e.Allowed)
}

// Validate checks every key of c in field order and returns the first failure as an *Error, or
// nil when c is usable.
func (c *Config) Validate() error {
	for _, f := range fields {
		if err := f.validate(c); err != nil {
			return err
		}
	}
	return nil
}
