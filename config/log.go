package config

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
)

// LogValue gives every key with its resolved value, secrets as "***" (empty when unset) and
// credentials in MONGO_URI masked, so the config can be logged once at start-up:
// logger.Info("config", "config", cfg). JWT_SECRET_RANDOM says whether JWT_SECRET was generated.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(fields)+1)
	for _, f := range fields {
		switch p := f.ptr(&c).(type) {
		case *int:
			attrs = append(attrs, slog.Int(f.key, *p))
		case *bool:
			attrs = append(attrs, slog.Bool(f.key, *p))
		default:
			attrs = append(attrs, slog.String(f.key, f.mask(f.format(&c))))
		}
		if f.key == "JWT_SECRET" {
			attrs = append(attrs, slog.Bool("JWT_SECRET_RANDOM", c.JWTSecretRandom))
		}
	}
	return slog.GroupValue(attrs...)
}

// String writes the configuration as KEY=value pairs, masked as in LogValue, so that printing a
// Config with fmt never shows a secret.
func (c Config) String() string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(f.key)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(f.mask(f.format(&c))))
	}
	return b.String()
}

// Addr is the HTTP listen address, HOST:PORT.
func (c *Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// GoString is String for %#v, for the same reason.
func (c Config) GoString() string { return "config.Config{" + c.String() + "}" }
