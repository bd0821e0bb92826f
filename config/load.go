package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/knadh/koanf/parsers/dotenv"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// Sources is everything Load reads besides the files it finds.
type Sources struct {
	Args    []string // command-line arguments without the program name (os.Args[1:])
	Environ []string // KEY=VALUE pairs as os.Environ returns them; later duplicates win
	Dir     string   // where .env and .env.<APP_ENV> are looked up; "" is the current directory
}

// ErrHelp is returned by Load when the arguments ask for help (-h, -help, --help); print Usage.
var ErrHelp = pflag.ErrHelp

// layer is one source's values, by key, with the name used in error messages.
type layer struct {
	name   string
	values map[string]string
}

// Load resolves the configuration from, later winning: the defaults of APP_ENV, Dir/.env,
// Dir/.env.<APP_ENV>, the YAML file named by -config or CONFIG_FILE, src.Environ and src.Args.
// APP_ENV itself is taken first, from the flags, the environment or .env (default development).
// Outside production an empty JWT_SECRET is replaced by 32 random bytes, hex-encoded.
//
// A value that does not parse or validate is an *Error for the first such key in Config's field
// order. Unknown flags, stray arguments, and a present but unreadable or malformed file are
// plain errors naming the flag or file; missing .env files are skipped. Load reads nothing but
// src and those files.
func Load(src Sources) (*Config, error) {
	flags, err := flagLayer(src.Args)
	if err != nil {
		return nil, err
	}
	environ, err := environLayer(src.Environ)
	if err != nil {
		return nil, err
	}
	dir := src.Dir
	if dir == "" {
		dir = "."
	}
	base, err := dotenvLayer(filepath.Join(dir, ".env"))
	if err != nil {
		return nil, err
	}

	appEnv := EnvDevelopment
	if v, ok := lookup("APP_ENV", flags, environ, base); ok {
		appEnv = strings.ToLower(strings.TrimSpace(v))
	}
	defaults, err := Defaults(appEnv)
	if err != nil {
		return nil, err
	}
	perEnv, err := dotenvLayer(filepath.Join(dir, ".env."+appEnv))
	if err != nil {
		return nil, err
	}

	configFile, err := configFilePath(dir, flags, environ, perEnv, base)
	if err != nil {
		return nil, err
	}
	yamlFile := layer{name: configFile}
	if configFile != "" {
		if yamlFile, err = yamlLayer(configFile); err != nil {
			return nil, err
		}
	}

	k := koanf.New(".")
	defaultValues := make(map[string]any, len(fields))
	for _, f := range fields {
		defaultValues[f.key] = f.format(defaults)
	}
	if err := k.Load(confmap.Provider(defaultValues, "."), nil); err != nil {
		return nil, fmt.Errorf("config: defaults: %w", err)
	}
	for _, l := range []layer{base, perEnv, yamlFile, environ, flags} {
		values := make(map[string]any, len(l.values))
		for key, v := range l.values {
			values[key] = v
		}
		if err := k.Load(confmap.Provider(values, "."), nil); err != nil {
			return nil, fmt.Errorf("config: %s: %w", l.name, err)
		}
	}
	if v := strings.ToLower(strings.TrimSpace(k.String("APP_ENV"))); v != appEnv {
		return nil, &Error{Key: "APP_ENV", Value: v, Allowed: fmt.Sprintf(
			"must be chosen by a flag, the environment or .env, not .env.%s or the config file (they chose %s)", appEnv, appEnv)}
	}
	if err := k.Set("CONFIG_FILE", configFile); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}

	cfg := defaults
	parseErrs := make([]*Error, len(fields))
	for i, f := range fields {
		parseErrs[i] = f.parse(cfg, k.String(f.key))
	}
	if cfg.JWTSecret == "" && !cfg.IsProduction() {
		b := make([]byte, minJWTSecret)
		_, _ = rand.Read(b) // crypto/rand.Read never fails
		cfg.JWTSecret, cfg.JWTSecretRandom = hex.EncodeToString(b), true
	}
	for i, f := range fields {
		if parseErrs[i] != nil {
			return nil, parseErrs[i]
		}
		if err := f.validate(cfg); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// lookup returns key's value from the first layer that sets it.
func lookup(key string, layers ...layer) (string, bool) {
	for _, l := range layers {
		if v, ok := l.values[key]; ok {
			return v, true
		}
	}
	return "", false
}

// configFilePath picks CONFIG_FILE from the flags, the environment, .env.<APP_ENV> or .env; a
// relative path from a .env file is taken relative to that file's directory.
func configFilePath(dir string, flags, environ, perEnv, base layer) (string, error) {
	for i, l := range []layer{flags, environ, perEnv, base} {
		v, ok := l.values["CONFIG_FILE"]
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if v != "" && i >= 2 && !filepath.IsAbs(v) {
			v = filepath.Join(dir, v)
		}
		return v, nil
	}
	return "", nil
}

// readLayer reads one provider (with its parser) into a flat map.
func readLayer(p koanf.Provider, pa koanf.Parser) (map[string]any, error) {
	k := koanf.New(".")
	if err := k.Load(p, pa); err != nil {
		return nil, err
	}
	return k.All(), nil
}

// known keeps the values of known keys, as text.
func known(name string, all map[string]any) layer {
	l := layer{name: name, values: make(map[string]string, len(all))}
	for key, v := range all {
		if _, ok := fieldIndex[key]; ok {
			l.values[key] = stringify(v)
		}
	}
	return l
}

// environLayer reads the known keys of environ through koanf's env provider.
func environLayer(environ []string) (layer, error) {
	p := env.Provider(".", env.Opt{
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(k, v string) (string, any) {
			if _, ok := fieldIndex[k]; !ok {
				return "", nil
			}
			return k, v
		},
	})
	all, err := readLayer(p, nil)
	if err != nil {
		return layer{}, fmt.Errorf("config: environment: %w", err)
	}
	return known("environment", all), nil
}

// dotenvLayer reads the known keys of a .env file; a missing file is an empty layer. Other keys
// in the file are ignored: the same file may feed other tools.
func dotenvLayer(path string) (layer, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return layer{name: path}, nil
	}
	all, err := readLayer(file.Provider(path), safeDotenv{})
	if err != nil {
		return layer{}, fmt.Errorf("config: reading %s: %w", path, err)
	}
	return known(path, all), nil
}

// safeDotenv is koanf's dotenv parser with error messages that quote no file content, which may
// hold secrets.
type safeDotenv struct{}

func (safeDotenv) Unmarshal(b []byte) (map[string]any, error) {
	m, err := dotenv.Parser().Unmarshal(b)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, " near "); i >= 0 {
			msg = msg[:i]
		}
		if strings.HasPrefix(msg, "unterminated quoted value") {
			msg = "unterminated quoted value"
		}
		return nil, errors.New(msg)
	}
	return m, nil
}

func (safeDotenv) Marshal(map[string]any) ([]byte, error) {
	return nil, errors.New("not supported")
}

// yamlQuoted matches the `...` spans in which yaml errors quote the document; compiled on the
// first such error, not at every start.
var yamlQuoted = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile("`[^`]*`") })

// yamlLayer reads a YAML file whose keys are the environment names or their lower-case,
// nested or kebab-case forms (port, mongo_uri, mongo-uri, mongo: {uri: ...}). Unknown keys are
// errors: in a file of ours they are typos.
func yamlLayer(path string) (layer, error) {
	all, err := readLayer(file.Provider(path), yaml.Parser())
	if err != nil {
		msg := yamlQuoted().ReplaceAllString(err.Error(), "`...`")
		msg = strings.Join(strings.Fields(msg), " ")
		return layer{}, fmt.Errorf("config: reading %s: %s", path, msg)
	}
	l := layer{name: path, values: make(map[string]string, len(all))}
	from := make(map[string]string, len(all))
	for name, v := range all {
		key := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(strings.TrimSpace(name)))
		if key == "CONFIG_FILE" {
			return layer{}, fmt.Errorf("config: %s: %q cannot be set inside the config file", path, name)
		}
		if _, ok := fieldIndex[key]; !ok {
			return layer{}, fmt.Errorf("config: %s: unknown key %q", path, name)
		}
		if prev, dup := from[key]; dup {
			return layer{}, fmt.Errorf("config: %s: %q and %q both set %s", path, prev, name, key)
		}
		from[key] = name
		l.values[key] = stringify(v)
	}
	return l, nil
}

// stringify writes a parsed YAML (or other provider) value as the text an environment variable
// would hold; lists become comma-separated.
func stringify(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case []any:
		s := make([]string, len(v))
		for i, e := range v {
			s[i] = stringify(e)
		}
		return strings.Join(s, ",")
	}
	return fmt.Sprint(v)
}

// newFlagSet defines one string flag per key (bool keys may omit the value) and -config.
func newFlagSet() (*pflag.FlagSet, map[string]string) {
	fs := pflag.NewFlagSet("eventide", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	keyOf := make(map[string]string)
	for _, f := range fields {
		for _, name := range f.flagNames() {
			usage := fmt.Sprintf("%s (%s)", f.usage, f.key)
			fs.String(name, "", usage)
			if f.kind == kindBool {
				fs.Lookup(name).NoOptDefVal = "true"
			}
			keyOf[name] = f.key
		}
	}
	return fs, keyOf
}

// Usage lists the command-line flags, one per key, for -help.
func Usage() string {
	fs, _ := newFlagSet()
	return fs.FlagUsages()
}

// flagLayer parses args and reads the flags that were set through koanf's posflag provider.
func flagLayer(args []string) (layer, error) {
	fs, keyOf := newFlagSet()
	if err := fs.Parse(doubleDash(fs, args)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return layer{}, ErrHelp
		}
		return layer{}, fmt.Errorf("config: %w", err)
	}
	if fs.NArg() > 0 {
		return layer{}, fmt.Errorf("config: unexpected argument %q: flags are -name value or --name=value", fs.Arg(0))
	}
	p := posflag.ProviderWithFlag(fs, ".", nil, func(f *pflag.Flag) (string, any) {
		return keyOf[f.Name], f.Value.String()
	})
	all, err := readLayer(p, nil)
	if err != nil {
		return layer{}, fmt.Errorf("config: flags: %w", err)
	}
	return known("flags", all), nil
}

// doubleDash rewrites single-dash long flags (-config x, -supervise) as pflag's --config x,
// leaving the values of flags that take one untouched, so that -port -1 reaches validation.
func doubleDash(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) < 2 || a[0] != '-' {
			out = append(out, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		if a[1] != '-' && len(name) > 1 {
			a = "-" + a
		}
		out = append(out, a)
		if f := fs.Lookup(name); f != nil && !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}
