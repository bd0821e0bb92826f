package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeFile writes content to dir/name and returns the path.
func writeFile(tb testing.TB, dir, name, content string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// mustLoad loads src and fails the test on an error.
func mustLoad(tb testing.TB, src Sources) *Config {
	tb.Helper()
	c, err := Load(src)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return c
}

func TestLoad_Layers(t *testing.T) {
	// Each step adds one layer that sets PORT (and a key of its own); the newest layer must win
	// PORT while the keys set only by older layers survive.
	type step struct {
		name    string
		files   map[string]string
		environ []string
		args    []string
		port    int
	}
	steps := []step{
		{name: "Defaults", port: 8080},
		{name: "DotEnv", files: map[string]string{".env": "PORT=1001\nCACHE_MAX_ENTRIES=7\n"}, port: 1001},
		{name: "DotEnvAppEnv", files: map[string]string{".env.development": "PORT=1002\nQUERY_MAX_DEPTH=8\n"}, port: 1002},
		{name: "YAML", files: map[string]string{
			"eventide.yaml":    "PORT: 1003\nQUERY_MAX_ALIASES: 9\n",
			".env.development": "PORT=1002\nQUERY_MAX_DEPTH=8\nCONFIG_FILE=eventide.yaml\n",
		}, port: 1003},
		{name: "Environ", environ: []string{"PORT=1004", "QUERY_MAX_TOKENS=99"}, port: 1004},
		{name: "Flags", args: []string{"--port", "1005"}, port: 1005},
	}
	dir := t.TempDir()
	var src Sources
	src.Dir = dir
	for i, s := range steps {
		for name, content := range s.files {
			writeFile(t, dir, name, content)
		}
		src.Environ = append(src.Environ, s.environ...)
		src.Args = append(src.Args, s.args...)
		t.Run(s.name+"Wins", func(t *testing.T) {
			c := mustLoad(t, src)
			if c.Port != s.port {
				t.Errorf("PORT = %d, want %d", c.Port, s.port)
			}
			// Keys set by earlier layers survive the later ones.
			survivors := []struct {
				from int
				got  int
				want int
				key  string
			}{
				{1, c.CacheMaxEntries, 7, "CACHE_MAX_ENTRIES"},
				{2, c.QueryMaxDepth, 8, "QUERY_MAX_DEPTH"},
				{3, c.QueryMaxAliases, 9, "QUERY_MAX_ALIASES"},
				{4, c.QueryMaxTokens, 99, "QUERY_MAX_TOKENS"},
			}
			for _, sv := range survivors {
				if i >= sv.from && sv.got != sv.want {
					t.Errorf("%s = %d, want %d (set by %s)", sv.key, sv.got, sv.want, steps[sv.from].name)
				}
			}
		})
	}
}

func TestLoad_AppEnv(t *testing.T) {
	tests := []struct {
		name    string
		dotenv  string
		environ []string
		args    []string
		want    string
		// The matching .env.<env> sets LOG_FILE to its own name.
		wantLogFile string
	}{
		{name: "DefaultDevelopment", want: EnvDevelopment, wantLogFile: "development.log"},
		{name: "FromDotEnv", dotenv: "APP_ENV=test\n", want: EnvTest, wantLogFile: "test.log"},
		{name: "EnvironOverDotEnv", dotenv: "APP_ENV=test\n", environ: []string{"APP_ENV=production", "JWT_SECRET=" + strings.Repeat("s", 32)}, want: EnvProduction, wantLogFile: "production.log"},
		{name: "FlagOverEnviron", environ: []string{"APP_ENV=production"}, args: []string{"--app-env=test"}, want: EnvTest, wantLogFile: "test.log"},
		{name: "CaseInsensitive", environ: []string{"APP_ENV=Test"}, want: EnvTest, wantLogFile: "test.log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.dotenv != "" {
				writeFile(t, dir, ".env", tt.dotenv)
			}
			for _, env := range []string{EnvDevelopment, EnvTest, EnvProduction} {
				writeFile(t, dir, ".env."+env, "LOG_FILE="+env+".log\n")
			}
			c := mustLoad(t, Sources{Dir: dir, Environ: tt.environ, Args: tt.args})
			if c.AppEnv != tt.want || c.LogFile != tt.wantLogFile {
				t.Errorf("APP_ENV, LOG_FILE = %q, %q; want %q, %q", c.AppEnv, c.LogFile, tt.want, tt.wantLogFile)
			}
			d, _ := Defaults(tt.want)
			if c.PasswordHashCost != d.PasswordHashCost {
				t.Errorf("PASSWORD_HASH_COST = %d, want the %s default %d", c.PasswordHashCost, tt.want, d.PasswordHashCost)
			}
		})
	}
}

func TestLoad_YAML(t *testing.T) {
	tests := []struct {
		name string
		yaml string
	}{
		{"EnvNames", "PORT: 9090\nMONGO_URI: mongodb://db:27017\nCACHE_TTL: 120\nUSE_REDIS: true\nCORS_ORIGINS: https://a.example, https://b.example\nMEMORY_LIMIT: 512MiB\n"},
		{"LowerCase", "port: 9090\nmongo_uri: mongodb://db:27017\ncache_ttl: 120\nuse_redis: yes\ncors_origins: [https://a.example, https://b.example]\nmemory_limit: 512MiB\n"},
		{"KebabAndNested", "port: 9090\nmongo:\n  uri: mongodb://db:27017\ncache-ttl: 2m\nuse-redis: true\ncors-origins:\n  - https://a.example\n  - https://b.example\nmemory-limit: 536870912\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "eventide.yaml", tt.yaml)
			for _, args := range [][]string{{"-config", path}, {"--config=" + path}, {"--config-file", path}} {
				c := mustLoad(t, Sources{Dir: dir, Args: args})
				if c.Port != 9090 || c.MongoURI != "mongodb://db:27017" || c.CacheTTL != 2*time.Minute ||
					!c.UseRedis || !reflect.DeepEqual(c.CORSOrigins, []string{"https://a.example", "https://b.example"}) ||
					c.MemoryLimit != 512<<20 || c.ConfigFile != path {
					t.Errorf("%v: got %v", args, c)
				}
			}
		})
	}

	t.Run("FromEnviron", func(t *testing.T) {
		dir := t.TempDir()
		path := writeFile(t, dir, "x.yml", "port: 7070\n")
		c := mustLoad(t, Sources{Dir: t.TempDir(), Environ: []string{"CONFIG_FILE=" + path}})
		if c.Port != 7070 || c.ConfigFile != path {
			t.Errorf("PORT, CONFIG_FILE = %d, %q; want 7070, %q", c.Port, c.ConfigFile, path)
		}
	})

	t.Run("RelativeToDotEnv", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "x.yml", "port: 7071\n")
		writeFile(t, dir, ".env", "CONFIG_FILE=x.yml\n")
		c := mustLoad(t, Sources{Dir: dir})
		if c.Port != 7071 || c.ConfigFile != filepath.Join(dir, "x.yml") {
			t.Errorf("PORT, CONFIG_FILE = %d, %q; want 7071, %q", c.Port, c.ConfigFile, filepath.Join(dir, "x.yml"))
		}
	})

	t.Run("EmptyFile", func(t *testing.T) {
		dir := t.TempDir()
		path := writeFile(t, dir, "empty.yaml", "")
		if c := mustLoad(t, Sources{Dir: dir, Args: []string{"-config", path}}); c.Port != 8080 {
			t.Errorf("PORT = %d, want 8080", c.Port)
		}
	})
}

func TestLoad_Flags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(*Config) bool
	}{
		{"DoubleDash", []string{"--port", "81", "--mongo-uri=mongodb://h"}, func(c *Config) bool { return c.Port == 81 && c.MongoURI == "mongodb://h" }},
		{"SingleDash", []string{"-port", "82", "-mongo-uri=mongodb://h"}, func(c *Config) bool { return c.Port == 82 && c.MongoURI == "mongodb://h" }},
		{"SuperviseBare", []string{"-supervise"}, func(c *Config) bool { return c.Supervise }},
		{"SuperviseValue", []string{"--supervise=no", "--seed-demo=false"}, func(c *Config) bool { return !c.Supervise && !c.SeedDemo }},
		{"BoolBareThenFlag", []string{"--use-redis", "--port", "83"}, func(c *Config) bool { return c.UseRedis && c.Port == 83 }},
		{"ValueStartingWithDash", []string{"--redis-master-name", "-m-"}, func(c *Config) bool { return c.RedisMasterName == "-m-" }},
		{"SizesAndLists", []string{"--memory-restart-threshold", "1GiB", "--trusted-proxies", "10.0.0.0/8, 192.168.1.1", "--redis-addrs", "a:1,,b:2"}, func(c *Config) bool {
			return c.MemoryRestartThreshold == 1<<30 &&
				reflect.DeepEqual(c.TrustedProxies, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.1/32")}) &&
				reflect.DeepEqual(c.RedisAddrs, []string{"a:1", "b:2"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, Sources{Dir: t.TempDir(), Args: tt.args})
			if !tt.check(c) {
				t.Errorf("%v: got %v", tt.args, c)
			}
		})
	}

	t.Run("ErrHelp", func(t *testing.T) {
		for _, arg := range []string{"-h", "-help", "--help"} {
			if _, err := Load(Sources{Dir: t.TempDir(), Args: []string{arg}}); !errors.Is(err, ErrHelp) {
				t.Errorf("Load(%s) error = %v, want ErrHelp", arg, err)
			}
		}
		if u := Usage(); !strings.Contains(u, "--mongo-uri") || !strings.Contains(u, "--config") || !strings.Contains(u, "--supervise") {
			t.Errorf("Usage() lacks flags:\n%s", u)
		}
	})
}

func TestLoad_JWTSecret(t *testing.T) {
	t.Run("RandomOutsideProduction", func(t *testing.T) {
		a := mustLoad(t, Sources{Dir: t.TempDir()})
		b := mustLoad(t, Sources{Dir: t.TempDir(), Environ: []string{"APP_ENV=test"}})
		for _, c := range []*Config{a, b} {
			if !c.JWTSecretRandom || len(c.JWTSecret) != 64 || strings.Trim(c.JWTSecret, "0123456789abcdef") != "" {
				t.Errorf("%s: JWT_SECRET = %d bytes, random %v; want 64 hex digits, random", c.AppEnv, len(c.JWTSecret), c.JWTSecretRandom)
			}
		}
		if a.JWTSecret == b.JWTSecret {
			t.Error("two starts share one random JWT_SECRET")
		}
	})
	t.Run("GivenIsKept", func(t *testing.T) {
		secret := strings.Repeat("k", 40)
		c := mustLoad(t, Sources{Dir: t.TempDir(), Environ: []string{"APP_ENV=production", "JWT_SECRET=" + secret}})
		if c.JWTSecret != secret || c.JWTSecretRandom {
			t.Errorf("JWT_SECRET changed or marked random (%v)", c.JWTSecretRandom)
		}
	})
}

func TestLoad_DotEnvFile(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, ".env", "# comment\nexport PORT=9001\nCACHE_TTL=60  # Reduced from 300\nADMIN_EMAIL='a@b.c'\nADMIN_PASSWORD=\"pa ss word\"\nUNRELATED=x\n")
		c := mustLoad(t, Sources{Dir: dir})
		if c.Port != 9001 || c.CacheTTL != time.Minute || c.AdminEmail != "a@b.c" || c.AdminPassword != "pa ss word" {
			t.Errorf("got %v / %q", c, c.AdminPassword)
		}
	})
	t.Run("RepoDevelopmentFile", func(t *testing.T) {
		c := mustLoad(t, Sources{Dir: "..", Environ: []string{"APP_ENV=development"}})
		if c.UseRedis || c.CacheTTL != time.Minute || c.MongoPoolSize != 5 || !c.SeedDemo ||
			c.AdminEmail != "admin@eventide.local" || c.AdminPassword != "eventide-admin" {
			t.Errorf("../.env.development gave %v", c)
		}
	})
}

// TestLoad_Errors covers failures that are not about one key's value.
func TestLoad_Errors(t *testing.T) {
	const secret = "sup3rs3cretvalue"
	tests := []struct {
		name    string
		files   map[string]string
		dirs    []string
		environ []string
		args    []string
		want    []string // substrings of the error
	}{
		{name: "ErrUnknownFlag", args: []string{"--prot", "80"}, want: []string{"unknown flag", "--prot"}},
		{name: "ErrUnknownSingleDashFlag", args: []string{"-prot=80"}, want: []string{"unknown flag", "prot"}},
		{name: "ErrFlagWithoutValue", args: []string{"--port"}, want: []string{"--port"}},
		{name: "ErrStrayArgument", args: []string{"serve"}, want: []string{`"serve"`}},
		{name: "ErrDotEnvUnterminated", files: map[string]string{".env": "JWT_SECRET=\"" + secret + "\nPORT=1\n"}, want: []string{".env", "unterminated"}},
		{name: "ErrDotEnvBadName", files: map[string]string{".env": "BAD NAME " + secret + "\n"}, want: []string{".env"}},
		{name: "ErrDotEnvUnreadable", dirs: []string{".env.development"}, want: []string{".env.development"}},
		{name: "ErrConfigFileMissing", args: []string{"-config", "/nonexistent/eventide.yaml"}, want: []string{"/nonexistent/eventide.yaml"}},
		{name: "ErrYAMLMalformed", files: map[string]string{"c.yaml": "port: [1\njwt_secret: " + secret + "\n"}, args: []string{"-config", "c.yaml"}, want: []string{"c.yaml"}},
		{name: "ErrYAMLNotAMap", files: map[string]string{"c.yaml": secret + "\n"}, args: []string{"-config", "c.yaml"}, want: []string{"c.yaml"}},
		{name: "ErrYAMLUnknownKey", files: map[string]string{"c.yaml": "prot: 80\n"}, args: []string{"-config", "c.yaml"}, want: []string{"c.yaml", `"prot"`}},
		{name: "ErrYAMLDuplicateKey", files: map[string]string{"c.yaml": "port: 80\nPORT: 81\n"}, args: []string{"-config", "c.yaml"}, want: []string{"c.yaml", "PORT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Chdir(dir) // relative -config paths
			for name, content := range tt.files {
				writeFile(t, dir, name, content)
			}
			for _, d := range tt.dirs {
				if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(Sources{Dir: dir, Environ: tt.environ, Args: tt.args})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, secret) || strings.Contains(msg, "\n") {
				t.Errorf("error %q leaks file content or spans lines", msg)
			}
			if !strings.HasPrefix(msg, "config: ") {
				t.Errorf("error %q lacks the config: prefix", msg)
			}
		})
	}
}

// TestLoad_ShutdownDelay: 0 is allowed (no delay), unlike other durations, even in production
// where the default is 5s.
func TestLoad_ShutdownDelay(t *testing.T) {
	for _, tt := range []struct {
		environ []string
		want    time.Duration
	}{
		{[]string{"APP_ENV=production", "JWT_SECRET=" + strings.Repeat("p", 40)}, 5 * time.Second},
		{[]string{"APP_ENV=production", "JWT_SECRET=" + strings.Repeat("p", 40), "SHUTDOWN_DELAY=0"}, 0},
		{[]string{"APP_ENV=test", "SHUTDOWN_DELAY=250ms"}, 250 * time.Millisecond},
		{[]string{"APP_ENV=test"}, 0},
	} {
		c, err := Load(Sources{Dir: t.TempDir(), Environ: tt.environ})
		if err != nil {
			t.Fatalf("%v: %v", tt.environ, err)
		}
		if c.ShutdownDelay != tt.want {
			t.Errorf("%v: SHUTDOWN_DELAY %v, want %v", tt.environ, c.ShutdownDelay, tt.want)
		}
	}
}
