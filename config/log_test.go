package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestLogValue(t *testing.T) {
	const (
		jwt      = "jwt-secret-jwt-secret-jwt-secret-42"
		redisPw  = "redis-pw-9f8e"
		adminPw  = "admin-pw-7d6c"
		mongoPw  = "mongo-pw-5b4a"
		tlsKeyPw = "tls-pw-3c2d"
	)
	c := mustLoad(t, Sources{Dir: t.TempDir(), Environ: []string{
		"APP_ENV=production",
		"JWT_SECRET=" + jwt,
		"REDIS_PASSWORD=" + redisPw,
		"ADMIN_EMAIL=root@example.com",
		"ADMIN_PASSWORD=" + adminPw,
		"MONGO_URI=mongodb://app:" + mongoPw + "@db1:27017,db2:27017/eventide?tlsCertificateKeyFilePassword=" + tlsKeyPw + "&replicaSet=rs0",
		"TRUSTED_PROXIES=10.0.0.0/8",
	}})

	t.Run("OK", func(t *testing.T) {
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c)
		var line struct{ Config map[string]any }
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%v: %s", err, buf.Bytes())
		}
		got := line.Config
		for _, f := range fields {
			if _, ok := got[f.key]; !ok {
				t.Errorf("key %s missing from the log", f.key)
			}
		}
		want := map[string]any{
			"APP_ENV":             "production",
			"PORT":                float64(8080),
			"USE_REDIS":           true,
			"JWT_SECRET":          "***",
			"JWT_SECRET_RANDOM":   false,
			"REDIS_PASSWORD":      "***",
			"ADMIN_PASSWORD":      "***",
			"ADMIN_EMAIL":         "root@example.com",
			"MONGO_URI":           "mongodb://app:***@db1:27017,db2:27017/eventide?tlsCertificateKeyFilePassword=***&replicaSet=rs0",
			"CACHE_TTL":           "300",
			"JWT_TTL":             "24h",
			"HTTP_MAX_BODY_BYTES": "1MiB",
			"TRUSTED_PROXIES":     "10.0.0.0/8",
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
	})

	t.Run("NoSecretAnywhere", func(t *testing.T) {
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "config", c, "value", *c)
		out := buf.String() + fmt.Sprintf("%v %+v %#v %s", c, c, *c, c)
		for _, s := range []string{jwt, redisPw, adminPw, mongoPw, tlsKeyPw} {
			if strings.Contains(out, s) {
				t.Errorf("secret %q printed:\n%s", s, out)
			}
		}
	})

	t.Run("EmptySecretsStayEmpty", func(t *testing.T) {
		d, _ := Defaults(EnvTest)
		var buf bytes.Buffer
		slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "config", d)
		if !strings.Contains(buf.String(), "config.REDIS_PASSWORD=\"\"") || !strings.Contains(buf.String(), "config.JWT_SECRET=\"\"") {
			t.Errorf("empty secrets not shown as empty:\n%s", buf.String())
		}
	})
}

func TestMaskURI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"mongodb://db:27017", "mongodb://db:27017"},
		{"mongodb://user@db", "mongodb://user@db"},
		{"mongodb://user:pw@db/x", "mongodb://user:***@db/x"},
		{"mongodb+srv://u:p@ss:w@cluster.example/db", "mongodb+srv://u:***@cluster.example/db"},
		{"mongodb://:pw@db", "mongodb://:***@db"},
		{"user:pw@db", "user:***@db"},
		{"mongodb://db/?authSource=admin&PASSWORD=x", "mongodb://db/?authSource=admin&PASSWORD=***"},
		{"mongodb://u:***@db", "mongodb://u:***@db"},
	}
	for _, tt := range tests {
		if got := MaskURI(tt.in); got != tt.want {
			t.Errorf("MaskURI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
